/** Presence: heartbeats, staleness after a crash, offline on shutdown, SCAN not KEYS. */
import type { Redis } from "ioredis";
import { expect, it } from "vitest";
import { defineActor } from "../src/index.js";
import {
  type Backend,
  backendEnv,
  describeBackends,
  MASTERS_ONLY,
  useBackendSystems,
} from "./harness/backends.js";
import { uniqueId } from "./harness/redis.js";
import { startWorker, waitFor } from "./harness/system.js";

/** Plain connections to every node of `backend`: the server, or each node of the cluster. */
function nodeClients(backend: Backend): Redis[] {
  return backend.cluster ? backend.cluster.nodes.map((n) => n.client()) : [backend.client() as Redis];
}

/** How many times command `name` ran, summed over `nodes` (INFO commandstats). */
async function commandCalls(nodes: Redis[], name: string): Promise<number> {
  let calls = 0;
  for (const node of nodes) {
    const info = await node.info("commandstats");
    const match = info.match(new RegExp(`cmdstat_${name}:calls=(\\d+)`));
    calls += match ? Number(match[1]) : 0;
  }
  return calls;
}

describeBackends(
  "presence",
  (backend) => {
    const newSystem = useBackendSystems(backend);

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
        ...backendEnv(backend()),
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
      const nodes = nodeClients(backend());
      const keysBefore = await commandCalls(nodes, "keys");
      const scansBefore = await commandCalls(nodes, "scan");
      await system.listOnline();
      expect(await commandCalls(nodes, "keys")).toBe(keysBefore);
      expect(await commandCalls(nodes, "scan")).toBeGreaterThan(scansBefore);
    });

    it("returns null for an app that never announced itself", async () => {
      const system = await newSystem();
      expect(await system.status(uniqueId("nobody"))).toBeNull();
    });
  },
  MASTERS_ONLY,
);
