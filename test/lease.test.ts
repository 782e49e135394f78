/**
 * Leases: a long handler keeps its lease alive, so another consumer of the same app never
 * takes its message; a consumer that dies leaves leases that come back once it is known dead.
 */
import { expect, it } from "vitest";
import { defineActor } from "../src/index.js";
import { backendEnv, describeBackends, MASTERS_ONLY, useBackendSystems } from "./harness/backends.js";
import { uniqueId } from "./harness/redis.js";
import { startWorker, waitFor } from "./harness/system.js";

type Work = { work: { payload: { key: string; delayMs?: number } } };

describeBackends(
  "leases",
  (backend) => {
    const newSystem = useBackendSystems(backend);

    it("renews the lease of a handler that runs longer than the lease", async () => {
      const app = uniqueId("long");
      const runs: string[] = [];
      const consumer = (label: string) =>
        defineActor<Work>({
          id: app,
          claimBatch: 4,
          handlers: {
            work: async (p) => {
              runs.push(`${label}:${p.key}`);
              await new Promise((r) => setTimeout(r, p.delayMs ?? 0));
            },
          },
        });
      const one = await newSystem({ leaseMs: 300, sweepMs: 100 });
      const two = await newSystem({ leaseMs: 300, sweepMs: 100 });
      const ref = one.ref<Work>(app);
      // Queued first, so that the first consumer claims all four in one batch.
      for (const key of ["a", "b", "c", "d"]) await ref.tell("work", { key, delayMs: 400 });
      await one.spawn(consumer("one"));
      await waitFor(() => runs.length === 1, 2000, "the first run");
      // A second consumer of the same app id, in another system: it must not steal held messages.
      await two.spawn(consumer("two"));
      await waitFor(() => runs.length === 4, 5000, "four runs");
      await new Promise((r) => setTimeout(r, 500));
      expect(runs).toEqual(["one:a", "one:b", "one:c", "one:d"]);
    });

    it("returns a dead consumer's leases once its heartbeat is stale, before the lease expires", async () => {
      const actor = uniqueId("victim");
      const worker = await startWorker("worker", {
        ...backendEnv(backend()),
        APP_ID: uniqueId("w"),
        ACTOR_ID: actor,
        HEARTBEAT_MS: "100",
        LEASE_MS: "60000",
      });
      const producer = await newSystem();
      const id = await producer.ref<Work>(actor).tell("work", { key: "k", delayMs: 10_000 });
      const admin = backend().client();
      const hash = backend().keys.message(actor, id);
      await waitFor(async () => (await admin.hget(hash, "status")) === "processing", 5000, "claimed");
      await worker.kill("SIGKILL");
      const killed = Date.now();
      // A new consumer comes up at once; the old lease has 60 s left, the heartbeat 0.3 s.
      const done: string[] = [];
      const next = await newSystem({ sweepMs: 100 });
      await next.spawn(
        defineActor<Work>({
          id: actor,
          handlers: {
            work: (p) => {
              done.push(p.key);
            },
          },
        }),
      );
      await waitFor(() => done.length === 1, 5000, "redelivery");
      expect(Date.now() - killed).toBeLessThan(3000);
      expect(await admin.hget(hash, "attempts")).toBe("2");
    });
  },
  MASTERS_ONLY,
);
