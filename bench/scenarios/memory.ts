/**
 * Redis memory: `used_memory` per completed message after a run of messages through one actor
 * (default 24 h message TTL), against BullMQ's bytes per completed job with its defaults; then
 * a run with a short `messageTtlSeconds`, waiting until the message hashes have expired, to
 * show what is left: only the capped outbox and the presence hashes.
 */
import { bullMemory } from "../baselines/bullmq.js";
import { Collector, sizeLabel } from "../collect.js";
import type { BenchEnv, Scenario } from "../model.js";
import { type BenchProtocol, benchSystem, completions, noopActor, statusesWritten } from "../redactor.js";
import { usedMemory } from "../redis-info.js";
import { rounds } from "../rounds.js";
import { pump, sleep, uid } from "../util.js";

/** Sizes of the memory scenario. */
export interface MemoryParams {
  messages: number;
  warmupMessages: number;
  /** The short message TTL of the expiry part, seconds. */
  ttlSeconds: number;
  /** Messages in the expiry part. */
  ttlMessages: number;
}

interface RunMemory {
  /** used_memory once every status is written, minus the reading before the first send. */
  grown: number;
  /** used_memory after the TTL, minus the same baseline (NaN when no TTL wait). */
  residue: number;
  /** ms from the last status written until used_memory stopped falling (TTL included). */
  expiryMs: number;
  /** Bytes the capped outbox holds (it never expires, by design). */
  outbox: number;
  keysLeft: number;
  messageHash: number;
}

async function memoryUsage(env: BenchEnv, key: string): Promise<number> {
  // SAMPLES 0 counts every element, not an estimate from five.
  return Number((await env.admin.memory("USAGE", key, "SAMPLES", 0)) ?? 0);
}

/** Runs `n` messages through one actor; with `ttlSeconds`, also waits out their expiry. */
async function redactorMemory(env: BenchEnv, n: number, ttlSeconds?: number): Promise<RunMemory> {
  const actor = uid("mem");
  const producerId = uid("mem-producer");
  const options = ttlSeconds === undefined ? {} : { messageTtlSeconds: ttlSeconds };
  const consumer = await benchSystem(env, uid("mem-consumer"), options);
  const producer = await benchSystem(env, producerId, options);
  try {
    const done = completions(consumer, actor);
    await consumer.spawn(noopActor(actor));
    const baseline = await usedMemory(env.admin);
    const ref = producer.ref<BenchProtocol>(actor);
    let lastId = "";
    await pump(n, 1000, async (i) => {
      const id = await ref.tell("noop", { i });
      if (i === n - 1) lastId = id;
    });
    await done.reached(n);
    await statusesWritten(env, actor);
    const grown = (await usedMemory(env.admin)) - baseline;
    const messageHash = await memoryUsage(env, `message:${lastId}`);
    const outbox = await memoryUsage(env, `queue:${producerId}:outbox`);
    let residue = Number.NaN;
    let expiryMs = Number.NaN;
    if (ttlSeconds !== undefined) {
      const t0 = performance.now();
      await sleep(ttlSeconds * 1000);
      // Redis expires keys lazily and in sampled cycles: read until the figure stops falling.
      let last = await usedMemory(env.admin);
      let still = 0;
      const deadline = Date.now() + 30_000;
      while (still < 5 && Date.now() < deadline) {
        await sleep(200);
        const now = await usedMemory(env.admin);
        still = now < last - 1024 ? 0 : still + 1;
        last = Math.min(last, now);
      }
      residue = last - baseline;
      // The last second was spent confirming that nothing more expired.
      expiryMs = performance.now() - t0 - 1000;
    }
    return { grown, residue, expiryMs, outbox, keysLeft: await env.admin.dbsize(), messageHash };
  } finally {
    await producer.shutdown();
    await consumer.shutdown();
  }
}

/** The Redis memory scenario. */
export const memory: Scenario<MemoryParams> = {
  name: "memory",
  title: "Redis bytes per completed message; what is left after the message TTL",
  full: { messages: 100_000, warmupMessages: 5_000, ttlSeconds: 2, ttlMessages: 20_000 },
  smoke: { messages: 300, warmupMessages: 50, ttlSeconds: 1, ttlMessages: 200 },
  async run(env, p) {
    const c = new Collector();
    const size = (warm: boolean) => (warm ? p.warmupMessages : p.messages);
    let sample: RunMemory | undefined;
    await rounds(
      env,
      "memory",
      [
        {
          name: "redactor",
          async run(warm) {
            const result = await redactorMemory(env, size(warm));
            return result.grown / size(warm);
          },
        },
        { name: "BullMQ", run: (warm) => bullMemory(env, size(warm), () => usedMemory(env.admin)) },
      ],
      (name, bytes) => c.add(name, "bytes per completed message", "B", bytes),
    );
    c.ratio("bytes per completed message", "redactor", "BullMQ");
    // The expiry part: its own repetitions, each a fresh server state and a short TTL.
    for (let rep = 1; rep <= env.reps; rep++) {
      await env.admin.flushall("SYNC");
      env.progress(`memory: expiry after ${p.ttlSeconds} s TTL ${rep}/${env.reps}`);
      sample = await redactorMemory(env, p.ttlMessages, p.ttlSeconds);
      c.add("redactor, short TTL", "bytes per message before expiry", "B", sample.grown / p.ttlMessages);
      c.add("redactor, short TTL", "bytes per message after expiry", "B", sample.residue / p.ttlMessages);
      // Back to baseline: beyond the capped outbox (which never expires, by design) only noise
      // may stay: client buffers and hash-table sizes move used_memory by a few hundred KB.
      c.add(
        "redactor, short TTL",
        "left after expiry, beyond the capped outbox",
        "KB",
        (sample.residue - sample.outbox) / 1024,
        {
          op: "<=",
          value: 256,
        },
      );
      c.add("redactor, short TTL", "last write → memory back", "s", sample.expiryMs / 1000);
    }
    await env.admin.flushall("SYNC");
    if (sample) {
      c.note(
        `memory: one message:<id> hash ≈ ${sample.messageHash} B; the outbox (capped at 1,000 copies) ≈ ${Math.round(
          sample.outbox / 1024,
        )} KB; ${sample.keysLeft} keys left after expiry (outbox, presence, heartbeats)`,
      );
    }
    return c.result(
      "memory",
      `${sizeLabel(p.messages, "messages", 100_000)}; expiry part ${p.ttlMessages.toLocaleString("en-US")} messages, TTL ${p.ttlSeconds} s`,
    );
  },
};
