/**
 * send rate: tells/s from one process to one (stopped) actor, nobody consuming; against
 * BullMQ `addBulk` (1,000 jobs per call) and the Redis floor (pipelined ZADD + HSET).
 */
import { bullSend } from "../baselines/bullmq.js";
import { floorClient, floorSend } from "../baselines/floor.js";
import { Collector, sizeLabel } from "../collect.js";
import type { BenchEnv, Scenario } from "../model.js";
import { type BenchProtocol, benchSystem, noopActor, registerIdle } from "../redactor.js";
import { rounds } from "../rounds.js";
import { pump, uid } from "../util.js";

/** Sizes of the send scenario. */
export interface SendParams {
  messages: number;
  warmupMessages: number;
  /** Tells in flight at once. */
  window: number;
}

const FIGURE = "sends/s";

/** Tells/s of one system to a registered but stopped actor. */
export async function redactorSend(env: BenchEnv, n: number, window: number): Promise<number> {
  const actor = uid("send");
  const consumer = await benchSystem(env, uid("send-consumer"));
  const producer = await benchSystem(env, uid("send-producer"));
  try {
    await registerIdle(consumer, noopActor(actor));
    const ref = producer.ref<BenchProtocol>(actor);
    const t0 = performance.now();
    await pump(n, window, (i) => ref.tell("noop", { i }));
    return n / ((performance.now() - t0) / 1000);
  } finally {
    await producer.shutdown();
    await consumer.shutdown();
  }
}

async function floorSendRate(env: BenchEnv, n: number): Promise<number> {
  const client = floorClient(env.redisUrl);
  try {
    const t0 = performance.now();
    await floorSend(client, `queue:${uid("floor-send")}:inbox`, n);
    return n / ((performance.now() - t0) / 1000);
  } finally {
    client.disconnect();
  }
}

/** The send-rate scenario. */
export const send: Scenario<SendParams> = {
  name: "send",
  title: "tells/s from one process, nobody consuming",
  full: { messages: 100_000, warmupMessages: 5_000, window: 1000 },
  smoke: { messages: 300, warmupMessages: 50, window: 100 },
  async run(env, p) {
    const c = new Collector();
    const size = (warm: boolean) => (warm ? p.warmupMessages : p.messages);
    await rounds(
      env,
      "send",
      [
        { name: "redactor", run: (warm) => redactorSend(env, size(warm), p.window) },
        { name: "BullMQ addBulk", run: (warm) => bullSend(env, size(warm)) },
        { name: "Redis floor", run: (warm) => floorSendRate(env, size(warm)) },
      ],
      (name, rate) => c.add(name, FIGURE, "msg/s", rate),
    );
    c.ratio(FIGURE, "redactor", "BullMQ addBulk", { op: ">=", value: 2 });
    c.ratio(FIGURE, "redactor", "Redis floor");
    c.note(`send: redactor keeps ${p.window} tells in flight; BullMQ adds 1,000 jobs per addBulk call`);
    return c.result("send", sizeLabel(p.messages, "messages", 100_000));
  },
};
