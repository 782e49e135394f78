/** Presence: heartbeats, staleness after a crash, offline on shutdown, SCAN not KEYS. */
import { describe, expect, it } from "vitest";
import { defineActor } from "../src/index.js";
import { uniqueId, useRedis } from "./harness/redis.js";
import { startWorker, useSystems, waitFor } from "./harness/system.js";

const redis = useRedis();
const newSystem = useSystems(redis);

async function commandCalls(name: string): Promise<number> {
  const info = await redis().client().info("commandstats");
  const match = info.match(new RegExp(`cmdstat_${name}:calls=(\\d+)`));
  return match ? Number(match[1]) : 0;
}

describe("presence", () => {
  it("marks spawned actors online with a heartbeat and offline on shutdown", async () => {
    const app = uniqueId("fc");
    const system = await newSystem();
    await system.spawn(defineActor({ id: app, handlers: {} }));
    const status = await system.status(app);
    expect(status).toMatchObject({ app, status: "online", online: true, heartbeat: "alive" });
    expect(status?.fields).toMatchObject({ app_id: app, ordering: "fifo-v1" });
    expect(Number(status?.fields.last_seen)).toBeGreaterThan(Date.now() / 1000 - 5);
    const observer = await newSystem();
    await system.shutdown();
    expect(await observer.status(app)).toMatchObject({ status: "offline", online: false });
    expect(await observer.listOnline()).not.toContain(app);
  });

  it("does not count a killed process's actors as online once its heartbeat is stale", async () => {
    const actor = uniqueId("crashy");
    const worker = await startWorker("worker", {
      REDIS_URL: redis().url,
      APP_ID: uniqueId("worker-app"),
      ACTOR_ID: actor,
      HEARTBEAT_MS: "150",
    });
    const observer = await newSystem();
    expect((await observer.status(actor))?.online).toBe(true);
    expect(await observer.listOnline()).toContain(actor);
    await worker.kill("SIGKILL");
    // It never wrote offline, but its heartbeat key expires after three periods.
    await waitFor(async () => (await observer.status(actor))?.online === false, 3000, "staleness");
    expect(await observer.status(actor)).toMatchObject({
      status: "online",
      heartbeat: "stale",
      online: false,
    });
    expect(await observer.listOnline()).not.toContain(actor);
  });

  it("lists apps with SCAN, never KEYS", async () => {
    const system = await newSystem();
    const keysBefore = await commandCalls("keys");
    const scansBefore = await commandCalls("scan");
    await system.listOnline();
    expect(await commandCalls("keys")).toBe(keysBefore);
    expect(await commandCalls("scan")).toBeGreaterThan(scansBefore);
  });

  it("returns null for an app that never announced itself", async () => {
    const system = await newSystem();
    expect(await system.status(uniqueId("nobody"))).toBeNull();
  });
});
