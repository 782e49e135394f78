/**
 * The crash test: a producer sends 10,000 messages (5,000 on a cluster) to an app served by a
 * separate OS process, which is killed with SIGKILL three times at random moments and started
 * again. Every message's handler effect must happen, none may be lost, every message ends `completed`, and
 * a message runs twice only if the process running it died before its completion was written.
 */
import { expect, it } from "vitest";
import { backendEnv, describeBackends, MASTERS_ONLY, useBackendSystems } from "./harness/backends.js";
import { uniqueId } from "./harness/redis.js";
import { type ChildWorker, startWorker, waitFor } from "./harness/system.js";

describeBackends(
  "crash recovery",
  (backend) => {
    const newSystem = useBackendSystems(backend);

    it("loses nothing and runs nothing twice that had completed, across three SIGKILLs", async () => {
      // Half as many on a cluster, where a message costs more: the run stays within the suite's budget.
      const TOTAL = backend().cluster ? 5_000 : 10_000;
      const actor = uniqueId("crash-target");
      const admin = backend().client();
      const keys = backend().keys;
      const env = {
        ...backendEnv(backend()),
        ACTOR_ID: actor,
        HEARTBEAT_MS: "200",
        LEASE_MS: "5000",
      };
      let workerApp = "";
      const start = () => {
        workerApp = uniqueId("crash-worker");
        return startWorker("worker", { ...env, APP_ID: workerApp });
      };
      let worker: ChildWorker = await start();

      const producer = await newSystem();
      const ref = producer.ref<{ work: { payload: { key: string; delayMs: number } } }>(actor);
      const ids: string[] = [];
      const sending = (async () => {
        for (let i = 0; i < TOTAL; i += 250) {
          const chunk = Array.from({ length: Math.min(250, TOTAL - i) }, (_, j) =>
            ref.tell("work", { key: `k${i + j}`, delayMs: 1 }),
          );
          ids.push(...(await Promise.all(chunk)));
          // A steady stream over several seconds, so that every kill lands mid-stream.
          await new Promise((r) => setTimeout(r, 150));
        }
      })();

      const effects = `effects:${actor}`;
      const done = () => admin.hlen(effects);
      // Three kills at random points spread over the run.
      const thresholds = [0.15, 0.45, 0.75].map((base) => Math.floor(TOTAL * (base + Math.random() * 0.1)));
      const report: string[] = [];
      for (const [n, threshold] of thresholds.entries()) {
        await waitFor(async () => (await done()) >= threshold, 60_000, `progress to ${threshold}`);
        const killedAt = Date.now();
        const progress = await done();
        const deadApp = workerApp;
        await worker.kill("SIGKILL");
        const orphaned = await admin.zcard(keys.processing(actor));
        worker = await start();
        const restartedAt = Date.now();
        // Recovered: no message is leased by the dead process any more, and work is moving again.
        let seen = "";
        await waitFor(
          async () => {
            const leases = await admin.zrange(keys.processing(actor), 0, -1);
            const owners = await Promise.all(
              leases.map((m) => admin.hget(keys.message(actor, JSON.parse(m).id), "lease")),
            );
            const held = owners.filter((o) => o?.startsWith(`${deadApp}@`)).length;
            const handled = (await done()) - progress;
            seen = `${held} leases still held by the dead worker, ${handled} handled since the kill`;
            return held === 0 && handled > 0;
          },
          30_000,
          "recovery",
        ).catch((err: Error) => {
          throw new Error(`${err.message} (last seen: ${seen}; worker output: ${worker.output()})`);
        });
        report.push(
          `kill ${n + 1} at ${progress} handled: ${orphaned} in processing at the kill, worker back in ${restartedAt - killedAt} ms, ` +
            `its leases back in the inbox ${Date.now() - killedAt} ms after the kill`,
        );
      }
      await sending;
      await waitFor(async () => (await done()) === TOTAL, 60_000, "every effect");
      await waitFor(
        async () =>
          (await admin.zcard(keys.inbox(actor))) === 0 && (await admin.zcard(keys.processing(actor))) === 0,
        30_000,
        "empty queues",
      );

      // Every message's hash is in its recipient's slot: one pipeline, even on a cluster.
      const pipeline = admin.pipeline();
      for (const id of ids) pipeline.hmget(keys.message(actor, id), "status", "attempts");
      const rows = ((await pipeline.exec()) ?? []).map(([, v]) => v as [string | null, string | null]);
      const effectCounts = await admin.hgetall(effects);
      const statusCounts: Record<string, number> = {};
      for (const [status] of rows) statusCounts[String(status)] = (statusCounts[String(status)] ?? 0) + 1;
      const twice = Object.entries(effectCounts).filter(([, c]) => Number(c) > 1);
      const redeliveredKeys = new Set(
        rows.flatMap(([, attempts], i) => (Number(attempts) > 1 ? [`k${i}`] : [])),
      );
      report.push(
        `messages: ${TOTAL} sent, ${Object.keys(effectCounts).length} with an effect, statuses ${JSON.stringify(statusCounts)}, ` +
          `${redeliveredKeys.size} redelivered after a kill, ${twice.length} ran twice, dead letters ${await admin.zcard(keys.dead(actor))}`,
      );
      console.log(`crash test [${backend().name}]\n  ${report.join("\n  ")}`);

      expect(ids).toHaveLength(TOTAL);
      expect(Object.keys(effectCounts)).toHaveLength(TOTAL);
      expect(statusCounts).toEqual({ completed: TOTAL });
      // A message ran twice only when it was redelivered after a kill; at most a batch per kill.
      for (const [key] of twice) expect(redeliveredKeys.has(key)).toBe(true);
      expect(twice.length).toBeLessThanOrEqual(3 * 64);
      expect(Math.max(...Object.values(effectCounts).map(Number))).toBeLessThanOrEqual(2);
      await worker.kill("SIGTERM");
    }, 180_000);
  },
  MASTERS_ONLY,
);
