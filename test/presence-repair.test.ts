/**
 * Presence that repairs itself: after any loss of `status:<app>` (FLUSHALL, DEL) the hash is
 * written again within a heartbeat period, at the cost of one EXISTS per period for all of a
 * process's apps; a wrong hash is written again once the process notices Redis lost data (its
 * heartbeat key was gone); and an app that several processes serve stays online until the last
 * of them stops.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { afterAll, describe, expect, it } from "vitest";
import { type ActorSystem, defineActor, type SystemEvents } from "../src/index.js";
import { uniqueId, useRedis } from "./harness/redis.js";
import { startWorker, useSystems, waitFor } from "./harness/system.js";

const redis = useRedis();
const newSystem = useSystems(redis);
const dir = mkdtempSync(join(tmpdir(), "redactor-presence-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function commandCalls(name: string): Promise<number> {
  const info = await redis().client().info("commandstats");
  const match = info.match(new RegExp(`cmdstat_${name}:calls=(\\d+)`));
  return match ? Number(match[1]) : 0;
}

// Shared: these tests are about several processes serving one app id at once.
const idle = (id: string) => defineActor({ id, activation: "shared", handlers: {} });

describe("presence repair", () => {
  it("comes back within a heartbeat after FLUSHALL, DEL and a wrong status, without a reconnect", async () => {
    const system = await newSystem({ heartbeatMs: 200 });
    const actor = uniqueId("repaired");
    await system.spawn(idle(actor));
    const repaired: SystemEvents["presence.repaired"][] = [];
    system.events.on("presence.repaired", (e) => repaired.push(e));
    const admin = redis().client();
    const online = async () => (await system.status(actor))?.online === true;

    await admin.flushall();
    const flushedAt = Date.now();
    await waitFor(online, 2000, "presence after FLUSHALL");
    expect(Date.now() - flushedAt).toBeLessThan(1500);
    expect(await system.listOnline()).toEqual(expect.arrayContaining([actor, system.appId]));
    // Its inbox is known again as a redactor inbox: senders use the canonical score.
    expect((await system.status(actor))?.fields.ordering).toBe("fifo-v1");
    expect(repaired.flatMap((e) => e.apps)).toEqual(expect.arrayContaining([actor, system.appId]));

    await admin.del(`status:${actor}`);
    await waitFor(online, 2000, "presence after DEL");

    // A wrong hash is read and written again once Redis is seen to have lost data.
    await admin.hset(`status:${actor}`, "status", "offline");
    await admin.del(`heartbeat:${system.nodeId}`);
    await waitFor(online, 2000, "presence after a wrong status");
  });

  it("costs one EXISTS per period for hundreds of apps, and no read of each nor write while nothing is lost", async () => {
    const system = await newSystem({ heartbeatMs: 200, sweepMs: 60_000 });
    const ids = Array.from({ length: 300 }, () => uniqueId("many"));
    for (const id of ids) await system.spawn(idle(id));
    await sleep(500);
    const names = ["exists", "evalsha", "hmget", "hset"];
    const before = await Promise.all(names.map(commandCalls));
    const started = Date.now();
    await sleep(2000);
    const periods = (Date.now() - started) / 200;
    const [exists, evals, hmgets, hsets] = (await Promise.all(names.map(commandCalls))).map(
      (n, i) => n - (before[i] as number),
    );
    expect(exists).toBeLessThanOrEqual(periods + 2);
    // The only script calls are the heartbeat's (one per period); no presence hash is read or written.
    expect(evals).toBeLessThanOrEqual(periods + 2);
    expect([hmgets, hsets]).toEqual([0, 0]);
    await redis().client().flushall();
    await waitFor(async () => (await system.listOnline()).length >= ids.length, 3000, "all back");
  });

  it("keeps an actor online while another process still serves it after one stops cleanly", async () => {
    const actor = uniqueId("shared");
    const worker = await startWorker("liveness-worker", {
      REDIS_URL: redis().url,
      APP_ID: uniqueId("shared-worker"),
      ACTOR_ID: actor,
      ACTIVATION: "shared",
      RUNS_FILE: join(dir, "unused.jsonl"),
    });
    const a = await newSystem();
    await a.spawn(idle(actor));
    const b = await newSystem();
    await b.spawn(idle(actor));
    expect((await b.status(actor))?.nodes).toHaveLength(3);

    // The real process stops cleanly (SIGTERM: shutdown), then one in-process system.
    await worker.kill("SIGTERM");
    expect(await b.status(actor)).toMatchObject({ status: "online", online: true });
    await a.shutdown();
    expect(await b.status(actor)).toMatchObject({ status: "online", online: true, nodes: [b.nodeId] });
    expect(await b.listOnline()).toContain(actor);
    // Stopping the actor alone (not the system) is a clean stop too.
    await b.stop(actor);
    expect(await b.status(actor)).toMatchObject({ status: "offline", online: false, nodes: [] });
  }, 30_000);

  it("is online exactly while some process serves the actor, through any schedule (property)", async () => {
    const seed = Number(process.env.PRESENCE_SEED ?? 9_009);
    const systems: ActorSystem[] = [];
    for (let i = 0; i < 3; i++) systems.push(await newSystem({ heartbeatMs: 100 }));
    const admin = redis().client();
    type Command =
      | { kind: "start"; node: number }
      | { kind: "stop"; node: number }
      | { kind: "flush" }
      | { kind: "del" }
      | { kind: "loseBeat"; node: number };
    const command: fc.Arbitrary<Command> = fc.oneof(
      fc.record({ kind: fc.constant("start" as const), node: fc.integer({ min: 0, max: 2 }) }),
      fc.record({ kind: fc.constant("stop" as const), node: fc.integer({ min: 0, max: 2 }) }),
      fc.constant({ kind: "flush" as const }),
      fc.constant({ kind: "del" as const }),
      fc.record({ kind: fc.constant("loseBeat" as const), node: fc.integer({ min: 0, max: 2 }) }),
    );
    await fc.assert(
      fc.asyncProperty(fc.array(command, { minLength: 1, maxLength: 8 }), async (commands) => {
        const actor = uniqueId("prop");
        const serving = new Set<number>();
        for (const c of commands) {
          if (c.kind === "start" && !serving.has(c.node)) {
            await (systems[c.node] as ActorSystem).spawn(idle(actor));
            serving.add(c.node);
          } else if (c.kind === "stop" && serving.has(c.node)) {
            await (systems[c.node] as ActorSystem).stop(actor);
            serving.delete(c.node);
          } else if (c.kind === "flush") {
            await admin.flushall();
          } else if (c.kind === "del") {
            await admin.del(`status:${actor}`);
          } else if (c.kind === "loseBeat") {
            // The key gone, the process alive: another's stop may take it for dead meanwhile.
            await admin.del(`heartbeat:${(systems[c.node] as ActorSystem).nodeId}`);
          }
          const expected = serving.size > 0;
          // Repaired within a heartbeat period (100 ms); allow a few on a loaded machine.
          await waitFor(
            async () =>
              ((await admin.exists(`status:${actor}`)) === 1 || !expected) &&
              ((await systems[0]?.status(actor))?.online ?? false) === expected,
            1500,
            `online=${expected} after ${JSON.stringify(c)} in ${JSON.stringify(commands)}`,
          );
        }
        for (const node of serving) await (systems[node] as ActorSystem).stop(actor);
      }),
      { seed, numRuns: 15, endOnFailure: true },
    );
  }, 120_000);
});
