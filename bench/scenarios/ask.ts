/**
 * ask: sequential request/replies between two systems in one process (the asker's system and
 * the one hosting an echo actor); latency percentiles over all asks of a repetition. Against
 * BullMQ `queue.add` + `job.waitUntilFinished` answered by a concurrency-1 worker, and a PING.
 */
import { bullAsk } from "../baselines/bullmq.js";
import { floorClient, floorPing } from "../baselines/floor.js";
import { Collector, sizeLabel } from "../collect.js";
import type { BenchEnv, Scenario } from "../model.js";
import { type BenchProtocol, benchSystem, noopActor } from "../redactor.js";
import { rounds } from "../rounds.js";
import { percentile } from "../stats.js";
import { uid } from "../util.js";

/** Sizes of the ask scenario. */
export interface AskParams {
  asks: number;
  /** Asks before the measured ones, in each run. */
  warmupAsks: number;
}

/** Latencies (ms) of `n` sequential asks from one system to an echo actor in another. */
export async function redactorAsk(env: BenchEnv, n: number, warmup: number): Promise<number[]> {
  const actor = uid("echo");
  const server = await benchSystem(env, uid("ask-server"));
  const client = await benchSystem(env, uid("ask-client"));
  try {
    await server.spawn(noopActor(actor));
    const ref = client.ref<BenchProtocol>(actor);
    const latencies: number[] = [];
    for (let i = 0; i < warmup + n; i++) {
      const t0 = performance.now();
      const reply = await ref.ask("echo", { i }, { timeoutMs: 5000 });
      if (reply.i !== i) throw new Error(`ask: echo replied ${reply.i} to ${i}`);
      if (i >= warmup) latencies.push(performance.now() - t0);
    }
    return latencies;
  } finally {
    await client.shutdown();
    await server.shutdown();
  }
}

async function ping(env: BenchEnv, n: number, warmup: number): Promise<number[]> {
  const client = floorClient(env.redisUrl);
  try {
    await floorPing(client, warmup);
    return await floorPing(client, n);
  } finally {
    client.disconnect();
  }
}

/** The ask scenario. */
export const ask: Scenario<AskParams> = {
  name: "ask",
  title: "sequential asks between two systems; latency percentiles",
  full: { asks: 5_000, warmupAsks: 300 },
  smoke: { asks: 100, warmupAsks: 10 },
  async run(env, p) {
    const c = new Collector();
    const size = (warm: boolean) => (warm ? p.warmupAsks : p.asks);
    await rounds(
      env,
      "ask",
      [
        { name: "redactor", run: (warm) => redactorAsk(env, size(warm), p.warmupAsks) },
        { name: "BullMQ", run: (warm) => bullAsk(env, size(warm), p.warmupAsks) },
        { name: "Redis PING", run: (warm) => ping(env, size(warm), p.warmupAsks) },
      ],
      (name, latencies) => {
        c.add(name, "p50", "ms", percentile(latencies, 0.5));
        c.add(name, "p99", "ms", percentile(latencies, 0.99));
        c.add(name, "p99.9", "ms", percentile(latencies, 0.999));
      },
    );
    c.ratio("p50", "redactor", "BullMQ", { op: "<=", value: 0.7 });
    c.ratio("p99", "redactor", "BullMQ", { op: "<=", value: 1 });
    c.ratio("p99.9", "redactor", "BullMQ");
    c.ratio("p50", "redactor", "Redis PING", { op: "<=", value: 5 });
    return c.result("ask", sizeLabel(p.asks, "sequential asks", 5_000));
  },
};
