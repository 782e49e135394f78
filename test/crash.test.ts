/**
 * The crash test: a producer sends 10,000 messages to an app served by a separate OS process,
 * which is killed with SIGKILL three times at random moments and started again. Every
 * message's handler effect must happen, none may be lost, every message ends `completed`, and
 * a message runs twice only if the process running it died before its completion was written.
 */
import { describe, expect, it } from "vitest";
import { uniqueId, useRedis } from "./harness/redis.js";
import { type ChildWorker, startWorker, useSystems, waitFor } from "./harness/system.js";

const redis = useRedis();
const newSystem = useSystems(redis);

const TOTAL = 10_000;

describe("crash recovery", () => {
  it("loses nothing and runs nothing twice that had completed, across three SIGKILLs", async () => {
    const actor = uniqueId("crash-target");
    const admin = redis().client();
    const env = {
      REDIS_URL: redis().url,
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
      const orphaned = await admin.zcard(`queue:${actor}:processing`);
      worker = await start();
      const restartedAt = Date.now();
      // Recovered: no message is leased by the dead process any more, and work is moving again.
      await waitFor(
        async () => {
          const leases = await admin.zrange(`queue:${actor}:processing`, 0, -1);
          const owners = await Promise.all(
            leases.map((m) => admin.hget(`message:${JSON.parse(m).id}`, "lease")),
          );
          return owners.every((o) => !o?.startsWith(`${deadApp}@`)) && (await done()) > progress;
        },
        30_000,
        "recovery",
      );
      report.push(
        `kill ${n + 1} at ${progress} handled: ${orphaned} in processing at the kill, worker back in ${restartedAt - killedAt} ms, ` +
          `its leases back in the inbox ${Date.now() - killedAt} ms after the kill`,
      );
    }
    await sending;
    await waitFor(async () => (await done()) === TOTAL, 60_000, "every effect");
    await waitFor(
      async () =>
        (await admin.zcard(`queue:${actor}:inbox`)) === 0 &&
        (await admin.zcard(`queue:${actor}:processing`)) === 0,
      30_000,
      "empty queues",
    );

    const pipeline = admin.pipeline();
    for (const id of ids) pipeline.hmget(`message:${id}`, "status", "attempts");
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
        `${redeliveredKeys.size} redelivered after a kill, ${twice.length} ran twice, dead letters ${await admin.zcard(`queue:${actor}:dead`)}`,
    );
    console.log(`crash test\n  ${report.join("\n  ")}`);

    expect(ids).toHaveLength(TOTAL);
    expect(Object.keys(effectCounts)).toHaveLength(TOTAL);
    expect(statusCounts).toEqual({ completed: TOTAL });
    // A message ran twice only when it was redelivered after a kill; at most a batch per kill.
    for (const [key] of twice) expect(redeliveredKeys.has(key)).toBe(true);
    expect(twice.length).toBeLessThanOrEqual(3 * 64);
    expect(Math.max(...Object.values(effectCounts).map(Number))).toBeLessThanOrEqual(2);
    await worker.kill("SIGTERM");
  }, 180_000);
});
