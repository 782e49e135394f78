/**
 * Durable timers: the flight-controller simulator's telemetry loop, driven by timers that live in
 * Redis instead of a `setTimeout` that dies with the process.
 *
 * HEAR_FC (actors/hear-fc.ts) runs with its own telemetry loop off (`telemetryHz: 0`). A
 * `telemetry-loop` actor owns three durable timers, started in its `setup` with `replace: false`
 * (a restart keeps their schedule instead of starting it again):
 *
 *   telemetry   every 500 ms, missed: "once"  ask HEAR_FC for a sample and forward it
 *   audit       every 500 ms, missed: "all"   count every period, even those it was down for
 *   blink       every 500 ms, missed: "skip"  a status light: a late blink is worth nothing
 *
 * The loop is then stopped for about two seconds (four periods) and spawned again: each timer
 * treats the ticks that fell meanwhile by its policy, and all three go on on their grid.
 *
 *   npm run example:timers
 */
import { pino } from "pino";
import { createSystem, defineActor, type MissedTicks } from "redactor";
import { type HearFcProtocol, hearFc } from "../actors/hear-fc.js";
import { findRedis } from "./support/redis.js";

type LoopProtocol = {
  telemetry: { payload: Record<string, never> };
  audit: { payload: Record<string, never> };
  blink: { payload: Record<string, never> };
  /** Cancels the three timers (they would otherwise stay in Redis, as durable timers do). */
  cancel_timers: { payload: Record<string, never>; reply: { cancelled: number } };
};

const PERIOD_MS = 500;

/** Every tick handled: its timer, its due time (from its id) and when it was handled. */
const handled: { timer: string; dueMs: number; at: number }[] = [];
const record = (timer: string, id: string) =>
  handled.push({ timer, dueMs: Number(id.split(":").at(-1)), at: Date.now() });

const telemetryLoop = defineActor<LoopProtocol>({
  id: "telemetry-loop",
  setup: async (ctx) => {
    const every = (missed: MissedTicks) => ({ everyMs: PERIOD_MS, missed, replace: false });
    await ctx.timers.start("telemetry", "telemetry", {}, every("once"));
    await ctx.timers.start("audit", "audit", {}, every("all"));
    await ctx.timers.start("blink", "blink", {}, every("skip"));
  },
  handlers: {
    telemetry: async (_p, ctx) => {
      record("telemetry", ctx.message.id);
      const sample = await ctx.system.ref<HearFcProtocol>("HEAR_FC").ask("telemetry_request", {});
      ctx.log.debug({ battery: sample.battery_level }, "telemetry");
    },
    audit: (_p, ctx) => {
      record("audit", ctx.message.id);
    },
    blink: (_p, ctx) => {
      record("blink", ctx.message.id);
    },
    cancel_timers: async (_p, ctx) => {
      let cancelled = 0;
      for (const key of ["telemetry", "audit", "blink"]) if (await ctx.timers.cancel(key)) cancelled += 1;
      return { cancelled };
    },
  },
});

const redis = await findRedis();
console.log(`Redis: ${redis.description}`);
const system = await createSystem({
  redis: redis.url,
  appId: "timers-example",
  logger: pino({ level: "warn" }),
});
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const count = (timer: string, from = 0) => handled.filter((h) => h.timer === timer && h.at >= from).length;

try {
  await system.spawn(hearFc({ telemetryHz: 0 }));
  await system.spawn(telemetryLoop);
  await sleep(4 * PERIOD_MS + 200);
  console.log(
    `1. running: ${count("telemetry")} telemetry, ${count("audit")} audit, ${count("blink")} blink ticks ` +
      `in ${(4 * PERIOD_MS + 200) / 1000} s (one per ${PERIOD_MS} ms each)`,
  );

  console.log("2. the loop stops for about 2 s: its timers stay in Redis, nothing fires");
  await system.stop("telemetry-loop");
  const downAt = Date.now();
  await sleep(4 * PERIOD_MS + 150);
  const missedPeriods = Math.floor((Date.now() - downAt) / PERIOD_MS);

  const upAt = Date.now();
  await system.spawn(telemetryLoop);
  await sleep(150);
  // The catch-up: ticks handled right after the restart whose due time fell while it was down.
  const caughtUp = (timer: string) =>
    handled.filter((h) => h.timer === timer && h.at >= upAt && h.dueMs > downAt && h.dueMs < upAt).length;
  console.log(`3. spawned again after ~${missedPeriods} missed periods; catch-up ticks by policy:`);
  console.log(`   telemetry (missed: "once"): ${caughtUp("telemetry")}`);
  console.log(`   audit     (missed: "all"):  ${caughtUp("audit")}`);
  console.log(`   blink     (missed: "skip"): ${caughtUp("blink")}`);
  await sleep(2 * PERIOD_MS + 100);
  const firstDue = (timer: string) => handled.find((h) => h.timer === timer)?.dueMs ?? 0;
  const grid = handled.every((h) => (h.dueMs - firstDue(h.timer)) % PERIOD_MS === 0);
  console.log(
    `4. then back on schedule: ${count("telemetry", upAt + 150)} telemetry, ${count("audit", upAt + 150)} audit, ` +
      `${count("blink", upAt + 150)} blink ticks in the next ${(2 * PERIOD_MS + 100) / 1000} s` +
      (grid ? "; every tick on the grid started at the first start" : ""),
  );
  const ids = new Set(handled.map((h) => `${h.timer}:${h.dueMs}`));
  console.log(`   ${handled.length} ticks handled, ${ids.size} distinct: no tick ran twice`);
  const { cancelled } = await system.ref<LoopProtocol>("telemetry-loop").ask("cancel_timers", {});
  console.log(`5. ${cancelled} timers cancelled: the loop is quiet for good, even across restarts`);
} finally {
  await system.shutdown();
  await redis.stop();
}
