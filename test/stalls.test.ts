/**
 * Stalls: a blocked event loop or a frozen process must not make a message run twice unless
 * the stall outlasted the lease. A cell never starts a message whose lease it may have lost,
 * and a process's liveness is not judged by its event loop. Real processes throughout.
 */
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import type { Job } from "./fixtures/delivery-worker.js";
import { uniqueId, useRedis } from "./harness/redis.js";
import { readRunLog, startsByKey } from "./harness/run-log.js";
import { type ChildWorker, startWorker, useSystems, waitFor } from "./harness/system.js";

const redis = useRedis();
const newSystem = useSystems(redis);
const workers: ChildWorker[] = [];

afterEach(async () => {
  await Promise.all(workers.splice(0).map((w) => w.kill("SIGKILL")));
});

function runLogFile(): string {
  return join(mkdtempSync(join(tmpdir(), "redactor-runs-")), "runs.log");
}

async function worker(env: Record<string, string>): Promise<ChildWorker> {
  const w = await startWorker("delivery-worker", { REDIS_URL: redis().url, APP_ID: uniqueId("w"), ...env });
  workers.push(w);
  return w;
}

describe("stalls", () => {
  it("a batch of synchronous handlers longer than the lease runs each message once (second consumer waiting)", async () => {
    const actor = uniqueId("sync-batch");
    const log = runLogFile();
    const env = { ACTOR_ID: actor, RUN_LOG: log, LEASE_MS: "1500" };
    const sender = await newSystem();
    const ref = sender.ref<Job>(actor);
    // Both consumers serve the actor before the batch is sent: one claims all 7, the other waits
    // and takes back what the first one's leases no longer cover.
    await worker(env);
    await worker(env);
    const keys = Array.from({ length: 7 }, (_, i) => `m${i}`);
    await Promise.all(keys.map((key) => ref.tell("job", { key, blockMs: 300 })));
    await waitFor(
      () => keys.every((k) => readRunLog(log).some((l) => l.key === k && l.phase === "end")),
      20_000,
      "every message",
    );
    await new Promise((r) => setTimeout(r, 2500));
    const starts = startsByKey(log);
    expect(Object.fromEntries(starts)).toEqual(Object.fromEntries(keys.map((k) => [k, 1])));
  });

  it("a handler that blocks the event loop for 7 s is not taken for a dead process (default options)", async () => {
    const actor = uniqueId("block-7s");
    const log = runLogFile();
    const env = { ACTOR_ID: actor, RUN_LOG: log };
    const sender = await newSystem();
    await worker(env);
    await worker(env);
    await sender.ref<Job>(actor).tell("job", { key: "long", blockMs: 7000 });
    await waitFor(
      () => readRunLog(log).some((l) => l.key === "long" && l.phase === "end"),
      20_000,
      "the long run",
    );
    // Give the other process every chance to take it (heartbeat stale after 6 s, sweep 1 s).
    await new Promise((r) => setTimeout(r, 2000));
    expect(startsByKey(log).get("long")).toBe(1);
  }, 40_000);

  it("a process frozen longer than its liveness limit does not run the rest of its batch after another took it", async () => {
    const actor = uniqueId("frozen");
    const log = runLogFile();
    const env = { ACTOR_ID: actor, RUN_LOG: log, HEARTBEAT_MS: "300" };
    const sender = await newSystem();
    const ref = sender.ref<Job>(actor);
    const first = await worker(env);
    const keys = Array.from({ length: 8 }, (_, i) => `f${i}`);
    await Promise.all(keys.map((key) => ref.tell("job", { key, waitMs: 300 })));
    await waitFor(() => readRunLog(log).some((l) => l.phase === "start"), 10_000, "the first run");
    first.child.kill("SIGSTOP");
    try {
      await worker(env);
      // The other process finds the frozen one's leases dead and runs the whole batch.
      await waitFor(
        () => keys.every((k) => readRunLog(log).some((l) => l.key === k && l.phase === "end")),
        20_000,
        "the other process to run the batch",
      );
    } finally {
      first.child.kill("SIGCONT");
    }
    await new Promise((r) => setTimeout(r, 2000));
    const firstPid = first.child.pid;
    const resumedStarts = readRunLog(log).filter((l) => l.phase === "start" && l.pid === firstPid);
    // Only the message in hand at the freeze ran on the frozen process; nothing after it.
    expect(resumedStarts.length).toBe(1);
    for (const k of keys) expect(startsByKey(log).get(k)).toBeLessThanOrEqual(2);
    expect([...startsByKey(log).values()].filter((n) => n === 2).length).toBeLessThanOrEqual(1);
  }, 60_000);
});
