/**
 * drain: a backlog already queued for one actor, handled one at a time in order with a no-op
 * handler and full status tracking; messages/s from the actor's start to the last status
 * written. Against a BullMQ worker at concurrency 1 and 50 draining the same number of queued
 * jobs, and the Redis floor (ZPOPMIN batches + HSET per message).
 */
import { bullDrain } from "../baselines/bullmq.js";
import { floorClient, floorDrain, floorSend } from "../baselines/floor.js";
import { Collector, sizeLabel } from "../collect.js";
import type { BenchEnv, Scenario } from "../model.js";
import {
  type BenchProtocol,
  benchSystem,
  completions,
  noopActor,
  registerIdle,
  statusesWritten,
} from "../redactor.js";
import { rounds } from "../rounds.js";
import { pump, uid } from "../util.js";

/** Sizes of the drain scenario. */
export interface DrainParams {
  messages: number;
  warmupMessages: number;
}

const FIGURE = "messages/s";

/** Messages/s of one redactor actor draining `n` queued messages; checks they ran in order. */
export async function redactorDrain(env: BenchEnv, n: number): Promise<number> {
  const actor = uid("drain");
  const consumer = await benchSystem(env, uid("drain-consumer"));
  const producer = await benchSystem(env, uid("drain-producer"));
  try {
    let expected = 0;
    let outOfOrder = 0;
    const definition = noopActor(actor, ({ i }) => {
      if (i !== expected) outOfOrder += 1;
      expected = i + 1;
    });
    await registerIdle(consumer, definition);
    const ref = producer.ref<BenchProtocol>(actor);
    await pump(n, 1000, (i) => ref.tell("noop", { i }));
    const done = completions(consumer, actor);
    const t0 = performance.now();
    await consumer.spawn(definition);
    await done.reached(n);
    await statusesWritten(env, actor);
    const seconds = (performance.now() - t0) / 1000;
    if (outOfOrder > 0) throw new Error(`drain: ${outOfOrder} messages ran out of order`);
    return n / seconds;
  } finally {
    await producer.shutdown();
    await consumer.shutdown();
  }
}

async function floorDrainRate(env: BenchEnv, n: number): Promise<number> {
  const client = floorClient(env.redisUrl);
  try {
    const inbox = `queue:${uid("floor-drain")}:inbox`;
    await floorSend(client, inbox, n);
    const t0 = performance.now();
    await floorDrain(client, inbox, n);
    return n / ((performance.now() - t0) / 1000);
  } finally {
    client.disconnect();
  }
}

/** The drain scenario. */
export const drain: Scenario<DrainParams> = {
  name: "drain",
  title: "queued backlog → one actor, no-op handler, in order; messages/s",
  full: { messages: 30_000, warmupMessages: 2_000 },
  smoke: { messages: 300, warmupMessages: 50 },
  async run(env, p) {
    const c = new Collector();
    const size = (warm: boolean) => (warm ? p.warmupMessages : p.messages);
    await rounds(
      env,
      "drain",
      [
        { name: "redactor", run: (warm) => redactorDrain(env, size(warm)) },
        { name: "BullMQ c=1", run: (warm) => bullDrain(env, size(warm), 1) },
        { name: "BullMQ c=50", run: (warm) => bullDrain(env, size(warm), 50) },
        { name: "Redis floor", run: (warm) => floorDrainRate(env, size(warm)) },
      ],
      (name, rate) => c.add(name, FIGURE, "msg/s", rate),
    );
    c.ratio(FIGURE, "redactor", "BullMQ c=1", { op: ">=", value: 5 });
    c.ratio(FIGURE, "redactor", "BullMQ c=50", { op: ">=", value: 1 });
    c.ratio(FIGURE, "redactor", "Redis floor");
    return c.result("drain", sizeLabel(p.messages, "messages", 100_000));
  },
};
