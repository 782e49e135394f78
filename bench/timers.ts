/**
 * The cost of idle durable timers (issue 12): 1,000 actors × 100 timers = 100,000 timers, none
 * due for an hour. Prints Redis' used_memory delta for the timers, the commands per second the
 * server gets while none is due (from INFO commandstats over an idle window, next to the same
 * window without timers), and what a restart of the hosting system costs in timer commands
 * (one ZRANGE of the due set's head per actor: no scan, no per-timer work).
 *
 *   npx tsx bench/timers.ts            (ACTORS=1000 PER_ACTOR=100 IDLE_MS=10000 to change)
 *
 * Starts its own throw-away redis-server (test/harness/redis-server.ts).
 */
import { pino } from "pino";
import { type ActorSystem, createSystem, defineActor, type Timers } from "../src/index.js";
import { startRedis } from "../test/harness/redis-server.js";
import { commandStats, statsDelta } from "./redis-info.js";

const ACTORS = Number(process.env.ACTORS ?? 1000);
const PER_ACTOR = Number(process.env.PER_ACTOR ?? 100);
const IDLE_MS = Number(process.env.IDLE_MS ?? 10_000);

const server = await startRedis();
const probe = server.client();

async function usedMemory(): Promise<number> {
  const info = await probe.info("memory");
  return Number(/used_memory:(\d+)/.exec(info)?.[1]);
}

type Tick = { tick: { payload: { k: number } } };

const timersOf = new Map<string, Timers<Tick>>();
const ids = Array.from({ length: ACTORS }, (_, i) => `bench-timer-${i}`);
const definitions = ids.map((id) =>
  defineActor<Tick>({
    id,
    setup: (ctx) => {
      timersOf.set(id, ctx.timers);
    },
    handlers: { tick: () => {} },
  }),
);

async function startSystem(): Promise<{ system: ActorSystem; spawnMs: number }> {
  const system = await createSystem({
    appId: "bench-timers",
    redis: server.url,
    logger: pino({ level: "warn" }),
  });
  const started = performance.now();
  for (let i = 0; i < definitions.length; i += 100) {
    await Promise.all(definitions.slice(i, i + 100).map((d) => system.spawn(d)));
  }
  return { system, spawnMs: performance.now() - started };
}

async function idleWindow(): Promise<{ perSecond: number; byCommand: Record<string, number> }> {
  const before = await commandStats(probe);
  await new Promise((r) => setTimeout(r, IDLE_MS));
  const delta = statsDelta(before, await commandStats(probe));
  return { perSecond: delta.calls / (IDLE_MS / 1000), byCommand: delta.byCommand };
}

const fmt = (n: number) => n.toLocaleString("en-US", { maximumFractionDigits: 1 });

// 1. Actors without timers: the baseline (heartbeats, sweep, presence).
let { system, spawnMs } = await startSystem();
const baseline = await idleWindow();
const memBefore = await usedMemory();

// 2. 100 timers on each, due in an hour or more (spread, so no two share a due time).
const startedAt = performance.now();
for (const [a, id] of ids.entries()) {
  const timers = timersOf.get(id) as Timers<Tick>;
  await Promise.all(
    Array.from({ length: PER_ACTOR }, (_, k) =>
      timers.start(`t${k}`, "tick", { k }, { everyMs: 3_600_000 + a * PER_ACTOR + k }),
    ),
  );
}
const startMs = performance.now() - startedAt;
const memAfter = await usedMemory();
const withTimers = await idleWindow();

// 3. A restart of the hosting system: what the actors' timers cost at start.
await system.shutdown();
const beforeRestart = await commandStats(probe);
({ system, spawnMs } = await startSystem());
const restart = statsDelta(beforeRestart, await commandStats(probe));
const timers = ACTORS * PER_ACTOR;
const dueEntries = await probe.zcard("timers:bench-timer-0:due");

console.log(`durable timers: ${fmt(timers)} idle timers on ${fmt(ACTORS)} actors (${PER_ACTOR} each)`);
console.log(`  started in ${fmt(startMs / 1000)} s (${fmt(timers / (startMs / 1000))} starts/s)`);
console.log(
  `  Redis used_memory: +${fmt((memAfter - memBefore) / 1048576)} MiB for the timers ` +
    `(${fmt((memAfter - memBefore) / timers)} bytes per timer; due set of one actor: ${dueEntries} entries)`,
);
console.log(
  `  idle commands/s: ${fmt(withTimers.perSecond)} with the timers, ${fmt(baseline.perSecond)} without ` +
    `(${IDLE_MS / 1000} s windows; the rest is heartbeats, sweep and presence)`,
);
console.log(`    with timers, by command: ${JSON.stringify(withTimers.byCommand)}`);
console.log(
  `  restart of the hosting system: ${fmt(restart.byCommand.zrange ?? 0)} ZRANGE of a due set's head ` +
    `(one per actor), ${fmt(restart.byCommand.zrangebyscore ?? 0)} ZRANGEBYSCORE, ` +
    `${fmt(restart.byCommand.hgetall ?? 0)} HGETALL, ${fmt(restart.byCommand.scan ?? 0)} SCAN; ` +
    `spawn of ${fmt(ACTORS)} actors took ${fmt(spawnMs)} ms`,
);
await system.shutdown();
await server.stop();
