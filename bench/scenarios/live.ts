/**
 * live: a producer and the actor running together in one process; messages/s from the first
 * send to the last status written. The producer keeps a window of sends in flight, the same
 * window for every contender: redactor `tell`, BullMQ `queue.add` with a worker at concurrency
 * 1 and 50, and the Redis floor (pipelined ZADD + HSET against a ZPOPMIN/BZPOPMIN consumer).
 */
import { bullLive } from "../baselines/bullmq.js";
import { floorClient, floorDrain, floorSend } from "../baselines/floor.js";
import { Collector, sizeLabel } from "../collect.js";
import type { BenchEnv, Scenario } from "../model.js";
import { type BenchProtocol, benchSystem, completions, noopActor, statusesWritten } from "../redactor.js";
import { rounds } from "../rounds.js";
import { pump, uid } from "../util.js";

/** Sizes of the live scenario. */
export interface LiveParams {
  messages: number;
  warmupMessages: number;
  /** Sends in flight at once. */
  window: number;
}

const FIGURE = "messages/s";

/** Messages/s of a producer system telling one actor of a consumer system while it runs. */
export async function redactorLive(env: BenchEnv, n: number, window: number): Promise<number> {
  const actor = uid("live");
  const consumer = await benchSystem(env, uid("live-consumer"));
  const producer = await benchSystem(env, uid("live-producer"));
  try {
    const done = completions(consumer, actor);
    await consumer.spawn(noopActor(actor));
    const ref = producer.ref<BenchProtocol>(actor);
    const t0 = performance.now();
    await pump(n, window, (i) => ref.tell("noop", { i }));
    await done.reached(n);
    await statusesWritten(env, actor);
    return n / ((performance.now() - t0) / 1000);
  } finally {
    await producer.shutdown();
    await consumer.shutdown();
  }
}

async function floorLive(env: BenchEnv, n: number, window: number): Promise<number> {
  const producer = floorClient(env.redisUrl);
  const consumer = floorClient(env.redisUrl);
  try {
    const inbox = `queue:${uid("floor-live")}:inbox`;
    const t0 = performance.now();
    // Pipelines of `window` messages: the same number in flight as the other producers.
    await Promise.all([floorSend(producer, inbox, n, window, 1), floorDrain(consumer, inbox, n)]);
    return n / ((performance.now() - t0) / 1000);
  } finally {
    producer.disconnect();
    consumer.disconnect();
  }
}

/** The live scenario. */
export const live: Scenario<LiveParams> = {
  name: "live",
  title: "producer and actor together; messages/s from first send to last completion",
  full: { messages: 30_000, warmupMessages: 2_000, window: 100 },
  smoke: { messages: 300, warmupMessages: 50, window: 100 },
  async run(env, p) {
    const c = new Collector();
    const size = (warm: boolean) => (warm ? p.warmupMessages : p.messages);
    await rounds(
      env,
      "live",
      [
        { name: "redactor", run: (warm) => redactorLive(env, size(warm), p.window) },
        { name: "BullMQ c=1", run: (warm) => bullLive(env, size(warm), 1, p.window) },
        { name: "BullMQ c=50", run: (warm) => bullLive(env, size(warm), 50, p.window) },
        { name: "Redis floor", run: (warm) => floorLive(env, size(warm), p.window) },
      ],
      (name, rate) => c.add(name, FIGURE, "msg/s", rate),
    );
    c.ratio(FIGURE, "redactor", "BullMQ c=1", { op: ">=", value: 3 });
    c.ratio(FIGURE, "redactor", "BullMQ c=50", { op: ">=", value: 1 });
    c.ratio(FIGURE, "redactor", "Redis floor");
    c.note(`live: the producer keeps ${p.window} sends in flight (tell / queue.add / one pipeline)`);
    return c.result("live", sizeLabel(p.messages, "messages", 100_000));
  },
};
