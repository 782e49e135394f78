/**
 * wake-up: one message to one actor among many idle ones; latency from the `tell` call to the
 * handler's start, both read on the same clock (one process). Against the Redis floor: a
 * consumer blocked in BZPOPMIN woken by a ZADD.
 */
import { floorClient, floorWake } from "../baselines/floor.js";
import { Collector, sizeLabel } from "../collect.js";
import type { BenchEnv, Scenario } from "../model.js";
import { type BenchProtocol, benchSystem, noopActor } from "../redactor.js";
import { rounds } from "../rounds.js";
import { percentile } from "../stats.js";
import { sleep, uid } from "../util.js";

/** Sizes of the wake-up scenario. */
export interface WakeupParams {
  idleActors: number;
  /** Wake-ups per repetition. */
  samples: number;
  warmupSamples: number;
}

/** A system with `count` idle actors and a sender; `wake(k)` times one message to actor k. */
async function idleCrowd(env: BenchEnv, count: number) {
  const prefix = uid("wake");
  const host = await benchSystem(env, uid("wake-host"));
  const sender = await benchSystem(env, uid("wake-sender"));
  let started: ((at: number) => void) | undefined;
  for (let start = 0; start < count; start += 500) {
    const batch = [];
    for (let k = start; k < Math.min(count, start + 500); k++) {
      batch.push(host.spawn(noopActor(`${prefix}-${k}`, () => started?.(performance.now()))));
    }
    await Promise.all(batch);
  }
  return {
    async wake(k: number, i: number): Promise<number> {
      const handlerStart = new Promise<number>((resolve) => {
        started = resolve;
      });
      const t0 = performance.now();
      await sender.ref<BenchProtocol>(`${prefix}-${k}`).tell("noop", { i });
      return (await handlerStart) - t0;
    },
    async close() {
      await sender.shutdown();
      await host.shutdown();
    },
  };
}

/** The wake-up scenario. */
export const wakeup: Scenario<WakeupParams> = {
  name: "wakeup",
  title: "one message to one actor among 10,000 idle ones; send → handler start",
  full: { idleActors: 10_000, samples: 300, warmupSamples: 50 },
  smoke: { idleActors: 100, samples: 20, warmupSamples: 5 },
  async run(env, p) {
    const c = new Collector();
    await env.admin.flushall("SYNC");
    env.progress(`wakeup: spawning ${p.idleActors} idle actors`);
    const crowd = await idleCrowd(env, p.idleActors);
    const producer = floorClient(env.redisUrl);
    const consumer = floorClient(env.redisUrl);
    let i = 0;
    try {
      await rounds(
        env,
        "wakeup",
        [
          {
            name: "redactor",
            async run(warm) {
              const latencies: number[] = [];
              for (let s = 0; s < (warm ? p.warmupSamples : p.samples); s++) {
                latencies.push(await crowd.wake(Math.floor(Math.random() * p.idleActors), i++));
                // Let the actor finish its status write and go idle again, as a real idle one is.
                await sleep(2);
              }
              return latencies;
            },
          },
          {
            name: "Redis floor",
            run: (warm) =>
              floorWake(producer, consumer, uid("floor-wake"), warm ? p.warmupSamples : p.samples),
          },
        ],
        (name, latencies) => {
          c.add(
            name,
            "p50",
            "ms",
            percentile(latencies, 0.5),
            name === "redactor" ? { op: "<=", value: 1 } : undefined,
          );
          c.add(name, "p99", "ms", percentile(latencies, 0.99));
        },
        { flush: false },
      );
    } finally {
      producer.disconnect();
      consumer.disconnect();
      await crowd.close();
      await env.admin.flushall("SYNC");
    }
    c.ratio("p50", "redactor", "Redis floor");
    c.ratio("p99", "redactor", "Redis floor");
    return c.result(
      "wakeup",
      `${sizeLabel(p.idleActors, "idle actors", 10_000)}, ${p.samples} wake-ups per repetition`,
    );
  },
};
