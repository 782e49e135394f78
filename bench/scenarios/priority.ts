/**
 * priority under load: a CRITICAL message sent while a large NORMAL backlog is being drained
 * by the same actor; delay from its `tell` to its handler's start. The bound is one claim
 * batch: the actor finishes the batch in hand, then its next claim must take the CRITICAL one.
 * The batch's duration is measured in the same run (claim batch × time per message).
 */

import { Priority } from "../../src/index.js";
import { Collector, sizeLabel } from "../collect.js";
import type { BenchEnv, Scenario } from "../model.js";
import { type BenchProtocol, benchSystem, completions, noopActor, registerIdle } from "../redactor.js";
import { rounds } from "../rounds.js";
import { percentile } from "../stats.js";
import { pump, sleep, uid } from "../util.js";

/** Sizes of the priority scenario. */
export interface PriorityParams {
  queued: number;
  /** CRITICAL messages per repetition, one at a time. */
  samples: number;
  /** The actor's claim batch (the runtime's default). */
  claimBatch: number;
}

/** One repetition: delays (ms) of CRITICAL messages and the duration of one claim batch (ms). */
async function underLoad(env: BenchEnv, p: PriorityParams, queued: number, samples: number) {
  const actor = uid("prio");
  const consumer = await benchSystem(env, uid("prio-consumer"), { claimBatch: p.claimBatch });
  const producer = await benchSystem(env, uid("prio-producer"));
  try {
    let critical: ((at: number) => void) | undefined;
    // Negative payloads mark the CRITICAL messages.
    const definition = noopActor(actor, ({ i }) => {
      if (i < 0) critical?.(performance.now());
    });
    await registerIdle(consumer, definition);
    const ref = producer.ref<BenchProtocol>(actor);
    const head = Math.min(1000, Math.floor(queued / 10));
    // The backlog, plus what runs before the first sample so that the drain is in full swing.
    await pump(queued + head, 1000, (i) => ref.tell("noop", { i }));
    const done = completions(consumer, actor);
    await consumer.spawn(definition);
    await done.reached(head);
    const delays: number[] = [];
    const t0 = performance.now();
    const done0 = done.count;
    // Stop while a few batches are still queued: every sample must see a backlog.
    while (delays.length < samples && queued + head - done.count > 4 * p.claimBatch) {
      // A random phase, so samples land anywhere within a claim batch.
      await sleep(Math.random() * 4);
      const started = new Promise<number>((resolve) => {
        critical = resolve;
      });
      const sent = performance.now();
      await ref.tell("noop", { i: -1 - delays.length }, { priority: Priority.CRITICAL });
      delays.push((await started) - sent);
    }
    const msPerMessage = (performance.now() - t0) / (done.count - done0);
    return { delays, batchMs: msPerMessage * p.claimBatch };
  } finally {
    await producer.shutdown();
    await consumer.shutdown();
  }
}

/** The priority-under-load scenario. */
export const priority: Scenario<PriorityParams> = {
  name: "priority",
  title: "CRITICAL sent while a NORMAL backlog drains for the same actor; delay to handler start",
  full: { queued: 50_000, samples: 100, claimBatch: 64 },
  smoke: { queued: 600, samples: 5, claimBatch: 64 },
  async run(env, p) {
    const c = new Collector();
    await rounds(
      env,
      "priority",
      [{ name: "redactor", run: (warm) => underLoad(env, p, warm ? p.queued / 5 : p.queued, p.samples) }],
      (name, { delays, batchMs }) => {
        c.add(name, "p50 delay", "ms", percentile(delays, 0.5), { op: "<=", value: 2 });
        c.add(name, "p99 delay", "ms", percentile(delays, 0.99));
        c.add(name, "one claim batch", "ms", batchMs);
        c.add(name, "samples", "n", delays.length);
      },
    );
    c.ratio("p99 delay", "redactor", "redactor", { op: "<=", value: 1 }, "one claim batch");
    c.note(
      `priority: claim batch ${p.claimBatch}; samples are taken while the backlog drains, so later ones see fewer queued`,
    );
    return c.result("priority", sizeLabel(p.queued, "NORMAL queued", 50_000));
  },
};
