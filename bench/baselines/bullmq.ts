/**
 * The BullMQ baseline: Queue, Worker and QueueEvents with their defaults (jobs are kept after
 * completion, as redactor keeps `message:<id>` hashes), on the same server as redactor. Each
 * run uses a fresh queue name, and closes every connection it opened.
 */
import { type ConnectionOptions, Queue, QueueEvents, Worker } from "bullmq";
import type { BenchEnv } from "../model.js";
import { Countdown, pump, uid } from "../util.js";

/** Jobs per `addBulk` call when filling a queue. */
export const BULL_CHUNK = 1000;

function connection(env: BenchEnv): ConnectionOptions {
  return { host: env.host, port: env.port, maxRetriesPerRequest: null };
}

/** Adds `n` small jobs with `addBulk`, `BULL_CHUNK` per call, `window` calls in flight. */
export async function bullFill(queue: Queue, n: number, window = 2): Promise<void> {
  await pump(Math.ceil(n / BULL_CHUNK), window, async (c) => {
    const jobs = [];
    for (let i = c * BULL_CHUNK; i < Math.min(n, (c + 1) * BULL_CHUNK); i++) {
      jobs.push({ name: "noop", data: { i } });
    }
    await queue.addBulk(jobs);
  });
}

/** A worker with a no-op processor that is not yet running; `count` counts completions. */
async function idleWorker(env: BenchEnv, name: string, concurrency: number) {
  const count = new Countdown();
  const worker = new Worker(name, async () => undefined, {
    connection: connection(env),
    concurrency,
    autorun: false,
  });
  worker.on("completed", () => count.hit());
  worker.on("error", () => {});
  await worker.waitUntilReady();
  return { worker, count };
}

/** Jobs/s of a worker draining `n` jobs queued before it starts. */
export async function bullDrain(env: BenchEnv, n: number, concurrency: number): Promise<number> {
  const name = uid("bull-drain");
  const queue = new Queue(name, { connection: connection(env) });
  try {
    await bullFill(queue, n);
    const { worker, count } = await idleWorker(env, name, concurrency);
    const t0 = performance.now();
    void worker.run();
    await count.reached(n);
    const seconds = (performance.now() - t0) / 1000;
    await worker.close();
    return n / seconds;
  } finally {
    await queue.close();
  }
}

/**
 * Jobs/s with a producer (`queue.add`, `window` in flight) and a running worker, from the
 * first add to the last completion.
 */
export async function bullLive(
  env: BenchEnv,
  n: number,
  concurrency: number,
  window: number,
): Promise<number> {
  const name = uid("bull-live");
  const queue = new Queue(name, { connection: connection(env) });
  try {
    await queue.waitUntilReady();
    const { worker, count } = await idleWorker(env, name, concurrency);
    void worker.run();
    const t0 = performance.now();
    await pump(n, window, (i) => queue.add("noop", { i }));
    await count.reached(n);
    const seconds = (performance.now() - t0) / 1000;
    await worker.close();
    return n / seconds;
  } finally {
    await queue.close();
  }
}

/** Jobs/s that `addBulk` writes from one process (nobody consumes them). */
export async function bullSend(env: BenchEnv, n: number): Promise<number> {
  const queue = new Queue(uid("bull-send"), { connection: connection(env) });
  try {
    await queue.waitUntilReady();
    const t0 = performance.now();
    await bullFill(queue, n);
    return n / ((performance.now() - t0) / 1000);
  } finally {
    await queue.close();
  }
}

/**
 * Latencies (ms) of `n` sequential request/replies: `queue.add` then `job.waitUntilFinished`,
 * answered by a concurrency-1 worker that returns the job's data; `warmup` more run first.
 */
export async function bullAsk(env: BenchEnv, n: number, warmup: number): Promise<number[]> {
  const name = uid("bull-ask");
  const queue = new Queue(name, { connection: connection(env) });
  const events = new QueueEvents(name, { connection: connection(env) });
  const worker = new Worker(name, async (job) => job.data, { connection: connection(env), concurrency: 1 });
  worker.on("error", () => {});
  try {
    await Promise.all([queue.waitUntilReady(), events.waitUntilReady(), worker.waitUntilReady()]);
    const latencies: number[] = [];
    for (let i = 0; i < warmup + n; i++) {
      const t0 = performance.now();
      const job = await queue.add("echo", { i });
      const reply = (await job.waitUntilFinished(events, 5000)) as { i: number };
      if (reply.i !== i) throw new Error(`BullMQ replied ${reply.i} to ${i}`);
      if (i >= warmup) latencies.push(performance.now() - t0);
    }
    return latencies;
  } finally {
    await worker.close();
    await events.close();
    await queue.close();
  }
}

/**
 * Bytes of `used_memory` per completed job after `n` jobs were added and processed by a
 * concurrency-50 worker, with BullMQ's defaults (completed jobs are kept, with no expiry).
 */
export async function bullMemory(env: BenchEnv, n: number, used: () => Promise<number>): Promise<number> {
  const name = uid("bull-memory");
  const queue = new Queue(name, { connection: connection(env) });
  try {
    await queue.waitUntilReady();
    const { worker, count } = await idleWorker(env, name, 50);
    const baseline = await used();
    void worker.run();
    await bullFill(queue, n);
    await count.reached(n);
    await worker.close();
    return ((await used()) - baseline) / n;
  } finally {
    await queue.close();
  }
}
