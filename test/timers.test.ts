/**
 * Durable actor timers (src/timers.ts): `ctx.timers.start/cancel/list`, on one server and on a
 * cluster. Real time for the basics (repeated ticks, cancel, replace, cron with a seconds field,
 * two processes hosting a shared actor); virtual time (SimulatedClock, Redis only stores) for the
 * missed-tick policies across a stop of the actor and for a seeded fast-check model of random
 * start/cancel/advance sequences; real processes for a SIGKILL of the hosting process; a Redis
 * restart with AOF; and the pure tick arithmetic (dueTicks).
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  type ActorSystem,
  defineActor,
  type Envelope,
  InvalidIdError,
  InvalidOptionError,
  SimulatedClock,
} from "../src/index.js";
import { Keyspace } from "../src/keyspace.js";
import { canonicalScore, wireScore } from "../src/priority.js";
import { Scripts } from "../src/scripts.js";
import { checkTimerStart, dueTicks, MAX_CATCH_UP_TICKS, MAX_EVERY_MS, type Timers } from "../src/timers.js";
import { backendEnv, describeBackends, MASTERS_ONLY, useBackendSystems } from "./harness/backends.js";
import { uniqueId, useRedis } from "./harness/redis.js";
import { startWorker, useSystems, waitFor } from "./harness/system.js";

type TickProtocol = {
  tick: { payload: { n: number; at?: Date } };
  arm: { payload: { everyMs: number; missed?: "skip" | "once" | "all" } };
};

/** An actor that records every tick it handles and hands out its ctx.timers. */
function ticker(id: string, onSetup?: (timers: Timers<TickProtocol>) => Promise<void> | void) {
  const ticks: Envelope[] = [];
  let timers: Timers<TickProtocol> | undefined;
  const definition = defineActor<TickProtocol>({
    id,
    setup: async (ctx) => {
      timers = ctx.timers;
      await onSetup?.(ctx.timers);
    },
    handlers: {
      tick: (_payload, ctx) => {
        ticks.push(ctx.message);
      },
      arm: async (payload, ctx) => {
        await ctx.timers.start(
          "beat",
          "tick",
          { n: 0 },
          { everyMs: payload.everyMs, missed: payload.missed },
        );
      },
    },
  });
  return {
    definition,
    ticks,
    timers: () => {
      if (!timers) throw new Error("the actor has not run setup yet");
      return timers;
    },
  };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("dueTicks (the arithmetic of one firing)", () => {
  it("everyMs: on time, late within a period, and missed periods under each policy", () => {
    const every = { everyMs: 1000 };
    expect(dueTicks({ ...every, missed: "skip" }, 5000, 5000)).toEqual({
      ticks: [5000],
      dropped: 0,
      nextDueMs: 6000,
    });
    expect(dueTicks({ ...every, missed: "skip" }, 5000, 5999)).toEqual({
      ticks: [5000],
      dropped: 0,
      nextDueMs: 6000,
    });
    // Two ticks due: skip sends none, once the latest, all both; the grid is kept.
    expect(dueTicks({ ...every, missed: "skip" }, 5000, 6500)).toEqual({
      ticks: [],
      dropped: 2,
      nextDueMs: 7000,
    });
    expect(dueTicks({ ...every, missed: "once" }, 5000, 9200)).toEqual({
      ticks: [9000],
      dropped: 4,
      nextDueMs: 10000,
    });
    expect(dueTicks({ ...every, missed: "all" }, 5000, 9200)).toEqual({
      ticks: [5000, 6000, 7000, 8000, 9000],
      dropped: 0,
      nextDueMs: 10000,
    });
    const capped = dueTicks({ ...every, missed: "all" }, 0, 1_000_000);
    expect(capped.ticks).toHaveLength(MAX_CATCH_UP_TICKS);
    expect(capped.ticks.at(-1)).toBe(1_000_000);
    expect(capped.dropped).toBe(1001 - MAX_CATCH_UP_TICKS);
    expect(capped.nextDueMs).toBe(1_001_000);
  });

  it("cron: follows the schedule, in its time zone, with the cap of all", () => {
    const t0 = Date.UTC(2025, 0, 1, 0, 0, 0);
    const minutely = { cron: "* * * * *", tz: "UTC" };
    expect(dueTicks({ ...minutely, missed: "once" }, t0, t0 + 30_000)).toEqual({
      ticks: [t0],
      dropped: 0,
      nextDueMs: t0 + 60_000,
    });
    expect(dueTicks({ ...minutely, missed: "all" }, t0, t0 + 150_000).ticks).toEqual([
      t0,
      t0 + 60_000,
      t0 + 120_000,
    ]);
    expect(dueTicks({ ...minutely, missed: "skip" }, t0, t0 + 150_000).ticks).toEqual([]);
    const day = dueTicks({ ...minutely, missed: "all" }, t0, t0 + 86_400_000);
    expect(day.ticks).toHaveLength(MAX_CATCH_UP_TICKS);
    expect(day.ticks.at(-1)).toBe(t0 + 86_400_000);
    expect(day.nextDueMs).toBe(t0 + 86_460_000);
    // 09:00 in Paris is 08:00 UTC in winter.
    const paris = dueTicks({ cron: "0 9 * * *", tz: "Europe/Paris", missed: "once" }, t0, t0);
    expect(new Date(paris.nextDueMs).toISOString()).toBe("2025-01-01T08:00:00.000Z");
  });

  it("refuses bad keys and options up front, with typed errors", () => {
    expect(() => checkTimerStart("", "tick", { everyMs: 100 })).toThrow(InvalidIdError);
    expect(() => checkTimerStart("a\nb", "tick", { everyMs: 100 })).toThrow(InvalidIdError);
    expect(() => checkTimerStart("k", "", { everyMs: 100 })).toThrow(InvalidOptionError);
    expect(() => checkTimerStart("k", "tick", {})).toThrow(/exactly one of everyMs and cron/);
    expect(() => checkTimerStart("k", "tick", { everyMs: 100, cron: "* * * * *" })).toThrow(/both/);
    expect(() => checkTimerStart("k", "tick", { everyMs: 1.5 })).toThrow(InvalidOptionError);
    expect(() => checkTimerStart("k", "tick", { everyMs: 5 })).toThrow(/at least 10/);
    expect(() => checkTimerStart("k", "tick", { everyMs: MAX_EVERY_MS + 1 })).toThrow(InvalidOptionError);
    expect(() => checkTimerStart("k", "tick", { everyMs: 1e300 })).toThrow(/at most/);
    expect(() => checkTimerStart("k", "tick", { everyMs: MAX_EVERY_MS })).not.toThrow();
    expect(() => checkTimerStart("k", "tick", { everyMs: 100, missed: "twice" })).toThrow(/missed/);
    expect(() => checkTimerStart("k", "tick", { everyMs: 100, priority: 9 })).toThrow(/priority/);
    expect(() => checkTimerStart("k", "tick", { everyMs: 100, replace: "yes" })).toThrow(/replace/);
    expect(() => checkTimerStart("k", "tick", { everyMs: 100, tz: "UTC" })).toThrow(/tz/);
    let caught: unknown;
    try {
      checkTimerStart("k", "tick", { cron: "every minute" });
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(InvalidOptionError);
    expect((caught as Error).cause).toBeInstanceOf(Error);
    expect(() => checkTimerStart("k", "tick", { cron: "* * * * *", tz: "Nowhere/Atlantis" })).toThrow(
      InvalidOptionError,
    );
    expect(() => checkTimerStart("k", "tick", { cron: "*/10 * * * * *", tz: "Europe/Paris" })).not.toThrow();
  });
});

describeBackends(
  "durable timers, real time",
  (backend) => {
    const newSystem = useBackendSystems(backend);

    /** Writes `n` timers of `app` that fell due a second ago (and are next due an hour later). */
    async function writeOverdueTimers(app: string, n: number): Promise<void> {
      const keys = backend().keys;
      const client = backend().client();
      const now = Date.now();
      try {
        const writes = client.pipeline();
        for (let i = 0; i < n; i++) {
          const spec = {
            gen: `g${i}`,
            type: "tick",
            payload: { n: i },
            everyMs: 3_600_000,
            missed: "once",
            priority: 2,
          };
          writes.hset(keys.timerSpecs(app), `k${i}`, JSON.stringify(spec));
          writes.zadd(keys.timerDue(app), now - 1000 - i, `k${i}`);
        }
        await writes.exec();
      } finally {
        client.disconnect();
      }
    }

    it("everyMs fires repeatedly into the actor's own inbox, with its payload, type and sender", async () => {
      const system = await newSystem();
      const id = uniqueId("timer-every");
      const t = ticker(id, (timers) =>
        timers.start("beat", "tick", { n: 7, at: new Date(0) }, { everyMs: 100 }).then(() => {}),
      );
      await system.spawn(t.definition);
      await waitFor(() => t.ticks.length >= 4, 5000, "4 ticks");
      for (const m of t.ticks) {
        expect(m.sender).toBe(id);
        expect(m.recipient).toBe(id);
        expect(m.message_type).toBe("tick");
        expect(m.payload).toEqual({ n: 7, at: new Date(0) });
        expect(m.id).toMatch(/^timer:beat:[0-9a-f-]{36}:\d+$/);
      }
      expect(new Set(t.ticks.map((m) => m.id)).size).toBe(t.ticks.length);
      // On the grid of the period.
      const dues = t.ticks.map((m) => Number(m.id.split(":").at(-1)));
      for (let i = 1; i < dues.length; i++) expect((dues[i] as number) - (dues[i - 1] as number)).toBe(100);
      const listed = await t.timers().list();
      expect(listed).toMatchObject([
        { key: "beat", type: "tick", everyMs: 100, missed: "once", priority: 2 },
      ]);
    });

    it("cancel stops it; cancel of an unknown key resolves false", async () => {
      const system = await newSystem();
      const t = ticker(uniqueId("timer-cancel"));
      await system.spawn(t.definition);
      expect(await t.timers().start("beat", "tick", { n: 1 }, { everyMs: 50 })).toBe("started");
      await waitFor(() => t.ticks.length >= 2, 5000, "2 ticks");
      expect(await t.timers().cancel("beat")).toBe(true);
      await sleep(150); // a tick sent just before the cancel may still be in the inbox
      const seen = t.ticks.length;
      await sleep(400);
      expect(t.ticks.length).toBe(seen);
      expect(await t.timers().cancel("beat")).toBe(false);
      expect(await t.timers().list()).toEqual([]);
    });

    it("a start of an existing key replaces it; replace: false keeps it", async () => {
      const system = await newSystem();
      const t = ticker(uniqueId("timer-replace"));
      await system.spawn(t.definition);
      await t.timers().start("beat", "tick", { n: 1 }, { everyMs: 60 });
      await waitFor(() => t.ticks.length >= 1, 5000, "a first tick");
      expect(await t.timers().start("beat", "tick", { n: 2 }, { everyMs: 60 })).toBe("replaced");
      expect(await t.timers().start("beat", "tick", { n: 3 }, { everyMs: 60, replace: false })).toBe("kept");
      const from = t.ticks.length;
      await waitFor(() => t.ticks.length >= from + 3, 5000, "3 more ticks");
      await sleep(100);
      const late = t.ticks.slice(from + 1).map((m) => (m.payload as { n: number }).n);
      expect(late.every((n) => n === 2)).toBe(true);
      expect(await t.timers().list()).toHaveLength(1);
    });

    it("cron with a seconds field fires on the second", async () => {
      const system = await newSystem();
      const t = ticker(uniqueId("timer-cron"));
      await system.spawn(t.definition);
      await t.timers().start("sec", "tick", { n: 1 }, { cron: "* * * * * *" });
      await waitFor(() => t.ticks.length >= 2, 5000, "2 cron ticks");
      const dues = t.ticks.map((m) => Number(m.id.split(":").at(-1)));
      for (const due of dues) expect(due % 1000).toBe(0);
      expect((dues[1] as number) - (dues[0] as number)).toBe(1000);
    });

    it("timer-fire.lua is a compare-and-set on the due time, the generation and the last tick", async () => {
      const system = await newSystem();
      const id = uniqueId("timer-cas");
      const t = ticker(id);
      await system.spawn(t.definition);
      await t.timers().start("slow", "tick", { n: 1 }, { everyMs: 3_600_000 });
      const keys = backend().keys;
      const redis = backend().client();
      const scripts = new Scripts(redis);
      const due = Number(await redis.zscore(keys.timerDue(id), "slow"));
      const gen = JSON.parse((await redis.hget(keys.timerSpecs(id), "slow")) as string).gen as string;
      const fire = (
        expectedDue: number,
        expectedGen: string,
        next: number | "",
        last: string | null = null,
        hold = "1",
      ) => {
        const tick = `timer:slow:${expectedGen}:${expectedDue}`;
        const member = JSON.stringify({
          id: tick,
          sender: id,
          recipient: id,
          message_type: "tick",
          payload: { n: 1 },
          priority: 2,
          timestamp: expectedDue / 1000,
          reply_to: null,
          timeout: null,
        });
        return scripts.run(
          "timer-fire",
          [
            keys.timerSpecs(id),
            keys.timerDue(id),
            keys.timerLast(id),
            keys.inbox(id),
            keys.outbox(id),
            keys.status(id),
            last === null ? keys.timerLast(id) : keys.message(id, last),
            keys.message(id, tick),
            keys.message(id, tick),
          ],
          [
            "slow",
            expectedDue,
            expectedGen,
            next,
            60,
            0,
            keys.channel(id),
            keys.wakeChannel(id) ?? "",
            "pending",
            last ?? "",
            hold,
            tick,
            member,
            tick,
            id,
            id,
            "tick",
            String(expectedDue / 1000),
            String(canonicalScore(2, expectedDue * 1000)),
            String(wireScore(2, expectedDue / 1000)),
          ],
        );
      };
      expect(await fire(due + 1, gen, due + 2)).toEqual([0, 0]);
      expect(await fire(due, "another-generation", due + 2)).toEqual([-1, 0]);
      expect(t.ticks).toHaveLength(0);
      expect(await fire(due, gen, due + 3_600_000)).toEqual([1, 1]);
      await waitFor(() => t.ticks.length === 1, 5000, "the tick fired by hand");
      const first = `timer:slow:${gen}:${due}`;
      expect(await redis.hget(keys.timerLast(id), "slow")).toBe(first);
      // The same tick again: the due time moved on, so it is stale.
      expect(await fire(due, gen, due + 3_600_000, first)).toEqual([0, 0]);
      expect(Number(await redis.zscore(keys.timerDue(id), "slow"))).toBe(due + 3_600_000);
      const next = due + 3_600_000;
      // The last tick is not the one the caller read: stale, no write.
      expect(await fire(next, gen, next + 1, null)).toEqual([0, 0]);
      expect(await fire(next, gen, next + 1, "timer:slow:other:1")).toEqual([0, 0]);
      // The last tick still waits (pending): held under skip/once, the due time moves on, no tick.
      await redis.hset(keys.message(id, first), "status", "pending");
      expect(await fire(next, gen, next + 5, first)).toEqual([2, 0]);
      expect(Number(await redis.zscore(keys.timerDue(id), "slow"))).toBe(next + 5);
      expect(await redis.exists(keys.message(id, `timer:slow:${gen}:${next}`))).toBe(0);
      // Under "all" (hold '0') it is sent anyway.
      expect(await fire(next + 5, gen, next + 10, first, "0")).toEqual([1, 1]);
      const sentAll = `timer:slow:${gen}:${next + 5}`;
      expect(await redis.hget(keys.timerLast(id), "slow")).toBe(sentAll);
      await waitFor(() => t.ticks.length === 2, 5000, "the tick sent under all");
      // A tick id that exists already is not sent again, even when the CAS passes.
      await redis.zadd(keys.timerDue(id), next + 5, "slow");
      expect(await fire(next + 5, gen, "", sentAll)).toEqual([1, 0]);
      // Reminded: the due time's own tick exists, not sent by a firing (a reminder): not sent
      // again, recorded as the last tick (held on while pending), code 3.
      await t.timers().start("slow", "tick", { n: 1 }, { everyMs: 3_600_000 });
      const gen2 = JSON.parse((await redis.hget(keys.timerSpecs(id), "slow")) as string).gen as string;
      const due2 = Number(await redis.zscore(keys.timerDue(id), "slow"));
      const reminder = `timer:slow:${gen2}:${due2}`;
      await redis.hset(keys.message(id, reminder), "status", "scheduled");
      expect(await fire(due2, gen2, due2 + 10)).toEqual([3, 0]);
      expect(await redis.hget(keys.timerLast(id), "slow")).toBe(reminder);
      await redis.hset(keys.message(id, reminder), "status", "pending");
      expect(await fire(due2 + 10, gen2, due2 + 20, reminder)).toEqual([2, 0]);
      await redis.hset(keys.message(id, reminder), "status", "completed");
      expect(await fire(due2 + 20, gen2, "", reminder)).toEqual([1, 1]);
      await waitFor(() => t.ticks.length === 3, 5000, "the tick after the reminder");
      expect(await t.timers().list()).toEqual([]);
      expect(await redis.hexists(keys.timerLast(id), "slow")).toBe(0);
      // A malformed call is refused before any write.
      expect(await fire(next, gen, next + 1, null, "maybe")).toEqual([-2, 0]);
      await sleep(100);
      expect(t.ticks).toHaveLength(3);
    });

    it("two systems hosting one shared actor: every tick is handled exactly once", async () => {
      const id = uniqueId("timer-shared");
      const handled: Envelope[] = [];
      const def = defineActor<TickProtocol>({
        id,
        activation: "shared",
        handlers: {
          tick: (_p, ctx) => {
            handled.push(ctx.message);
          },
          arm: async (payload, ctx) => {
            await ctx.timers.start("beat", "tick", { n: 0 }, { everyMs: payload.everyMs, missed: "all" });
          },
        },
      });
      const a = await newSystem();
      const b = await newSystem();
      const fired = { a: 0, b: 0 };
      a.events.on("timer.fired", (e) => {
        if (e.actor === id) fired.a += e.ticks;
      });
      b.events.on("timer.fired", (e) => {
        if (e.actor === id) fired.b += e.ticks;
      });
      await a.spawn(def);
      await b.spawn(def);
      await a.ref<TickProtocol>(id).tell("arm", { everyMs: 40 });
      await waitFor(() => handled.length >= 40, 10_000, "40 ticks");
      await a.shutdown();
      await b.shutdown();
      const ids = handled.map((m) => m.id);
      expect(new Set(ids).size).toBe(ids.length);
      // Every tick on the grid between the first and the last was sent once, by one process.
      const dues = [...new Set(ids)].map((i) => Number(i.split(":").at(-1))).sort((x, y) => x - y);
      for (let i = 1; i < dues.length; i++) expect((dues[i] as number) - (dues[i - 1] as number)).toBe(40);
      expect(fired.a + fired.b).toBe(ids.length);
    });

    it("shared: a timer started at runtime in one process is fired by the others once it is gone", async () => {
      const id = uniqueId("timer-shared-arm");
      const a = await newSystem();
      const b = await newSystem();
      const inA = ticker(id);
      const inB = ticker(id);
      await a.spawn({ ...inA.definition, activation: "shared" });
      await b.spawn({ ...inB.definition, activation: "shared" });
      // Started through process a's ctx.timers: process b learns of it only by the hint.
      await inA.timers().start("beat", "tick", { n: 1 }, { everyMs: 80 });
      await waitFor(() => inA.ticks.length + inB.ticks.length >= 2, 5000, "ticks while both run");
      await a.shutdown();
      const from = inB.ticks.length;
      await waitFor(() => inB.ticks.length >= from + 5, 5000, "ticks fired by b once a has gone");
      // A cancel in b reaches b's armed timer as well; and a start there reaches nobody twice.
      expect(await inB.timers().cancel("beat")).toBe(true);
      await sleep(200);
      const seen = inB.ticks.length;
      await sleep(300);
      expect(inB.ticks.length).toBe(seen);
      const ids = [...inA.ticks, ...inB.ticks].map((m) => m.id);
      expect(new Set(ids).size).toBe(ids.length);
    });

    for (const missed of ["skip", "once"] as const) {
      it(`missed: "${missed}": a handler slower than the period never fills the inbox`, async () => {
        const system = await newSystem();
        const id = uniqueId(`timer-slow-${missed}`);
        let handled = 0;
        const held: number[] = [];
        system.events.on("timer.fired", (e) => {
          if (e.actor === id && e.ticks === 0) held.push(e.dueMs);
        });
        await system.spawn(
          defineActor<TickProtocol>({
            id,
            setup: (ctx) =>
              ctx.timers.start("beat", "tick", { n: 0 }, { everyMs: 20, missed }).then(() => {}),
            handlers: {
              tick: async () => {
                await sleep(100);
                handled += 1;
              },
              arm: () => {},
            },
          }),
        );
        const client = backend().client();
        let most = 0;
        try {
          const deadline = Date.now() + 1500;
          while (Date.now() < deadline) {
            most = Math.max(most, await client.zcard(backend().keys.inbox(id)));
            await sleep(25);
          }
        } finally {
          client.disconnect();
        }
        // At most the tick waiting behind the one in hand (and one in flight at a read).
        expect(most).toBeLessThanOrEqual(2);
        expect(handled).toBeGreaterThanOrEqual(5);
        expect(held.length).toBeGreaterThan(0);
      });
    }

    it("a family instance activated with overdue timers gets every catch-up tick at once, without the sweep", async () => {
      const family = uniqueId("tfam");
      const app = `${family}:1`;
      const ticks: Envelope[] = [];
      const def = defineActor<TickProtocol>({
        family,
        handlers: {
          tick: (_p, ctx) => {
            ticks.push(ctx.message);
          },
          arm: () => {},
        },
      });
      // 200 timers of the instance fell due while it was passivated; the next ticks are an hour away.
      await writeOverdueTimers(app, 200);
      // The sweep never runs: only the wake-ups of the activation and of the ticks help.
      const system = await newSystem({ sweepMs: 600_000 });
      await system.spawn(def);
      await system.ref<TickProtocol>(app).tell("arm", { everyMs: 1 });
      await waitFor(() => ticks.length === 200, 5000, "200 catch-up ticks");
    });

    it("spawn does not wait for the catch-up of many overdue timers; every one arrives", async () => {
      const id = uniqueId("timer-many");
      const n = 1000;
      await writeOverdueTimers(id, n);
      const system = await newSystem();
      let fired = 0;
      system.events.on("timer.fired", (e) => {
        if (e.actor === id) fired += e.ticks;
      });
      const t = ticker(id);
      await system.spawn(t.definition);
      expect(fired).toBeLessThan(n);
      await waitFor(() => t.ticks.length === n, 30_000, `${n} catch-up ticks`);
      expect(new Set(t.ticks.map((m) => (m.payload as { n: number }).n)).size).toBe(n);
    });

    it('missed: "all" sends every tick, however slow the handler', async () => {
      const system = await newSystem();
      const id = uniqueId("timer-slow-all");
      await system.spawn(
        defineActor<TickProtocol>({
          id,
          setup: (ctx) =>
            ctx.timers.start("beat", "tick", { n: 0 }, { everyMs: 20, missed: "all" }).then(() => {}),
          handlers: {
            tick: async () => {
              await sleep(100);
            },
            arm: () => {},
          },
        }),
      );
      const client = backend().client();
      try {
        await waitFor(async () => (await client.zcard(backend().keys.inbox(id))) >= 10, 5000, "a backlog");
      } finally {
        client.disconnect();
      }
    });
  },
  MASTERS_ONLY,
);

describeBackends(
  "durable timers, virtual time",
  (backend) => {
    const newSystem = useBackendSystems(backend);

    /** Resolves once `system` has emitted `count` timer.fired events for `actor` since `since`. */
    function firedCounter(system: ActorSystem, actor: string) {
      const events: { dueMs: number; ticks: number }[] = [];
      system.events.on("timer.fired", (e) => {
        if (e.actor === actor) events.push(e);
      });
      return events;
    }

    for (const [missed, expected] of [
      ["skip", 0],
      ["once", 1],
      ["all", 5],
    ] as const) {
      it(`missed: "${missed}" after the actor was down for 5 periods sends ${expected}`, async () => {
        const clock = new SimulatedClock(Date.UTC(2030, 0, 1));
        const id = uniqueId(`timer-missed-${missed}`);
        const first = ticker(id);
        const a = await newSystem({ clock });
        const firedA = firedCounter(a, id);
        await a.spawn(first.definition);
        await first.timers().start("beat", "tick", { n: 1 }, { everyMs: 1000, missed });
        clock.advance(1000);
        await waitFor(() => first.ticks.length === 1 && firedA.length === 1, 5000, "the first tick");
        await a.shutdown();
        // Down from t0+1000 to t0+6500: ticks due at 2000 … 6000 fell meanwhile.
        clock.advance(5500);
        const second = ticker(id);
        const b = await newSystem({ clock });
        const firedB = firedCounter(b, id);
        await b.spawn(second.definition);
        await waitFor(() => firedB.length === 1, 5000, "the catch-up firing");
        await waitFor(() => second.ticks.length === expected, 5000, `${expected} catch-up ticks`);
        const t0 = Date.UTC(2030, 0, 1);
        const dues = second.ticks.map((m) => Number(m.id.split(":").at(-1)) - t0);
        const want = { skip: [], once: [6000], all: [2000, 3000, 4000, 5000, 6000] }[missed];
        expect(dues).toEqual(want);
        // timer.fired tells the tick sent last (under once, the one sent), or the one that fell.
        expect(firedB[0]?.dueMs).toBe(t0 + { skip: 2000, once: 6000, all: 6000 }[missed]);
        // The grid goes on: the next tick at 7000.
        clock.advance(500);
        await waitFor(() => second.ticks.length === expected + 1, 5000, "the next tick");
        expect(Number(second.ticks.at(-1)?.id.split(":").at(-1)) - t0).toBe(7000);
        await sleep(50);
        expect(second.ticks.length).toBe(expected + 1);
      });
    }

    it("one advance over several periods is a late host (the policy applies); steps of one period see every tick", async () => {
      const t0 = Date.UTC(2031, 0, 1);
      const clock = new SimulatedClock(t0);
      const id = uniqueId("timer-steps");
      const t = ticker(id);
      const system = await newSystem({ clock });
      await system.spawn(t.definition);
      await t.timers().start("beat", "tick", { n: 1 }, { everyMs: 1000 });
      for (let i = 1; i <= 3; i++) {
        clock.advance(1000);
        await waitFor(() => t.ticks.length === i, 5000, `tick ${i}`);
      }
      // Five periods in one step, the process up all along: one tick (missed: "once", the default).
      clock.advance(5000);
      await waitFor(() => t.ticks.length === 4, 5000, "one tick for five periods");
      await sleep(100);
      expect(t.ticks.map((m) => Number(m.id.split(":").at(-1)) - t0)).toEqual([1000, 2000, 3000, 8000]);
    });

    it("model: random start/cancel/advance sequences send the ticks a simple model expects", async () => {
      type Op =
        | { op: "start"; key: string; everyMs: number; missed: "skip" | "once" | "all" }
        | { op: "cancel"; key: string }
        | { op: "advance"; ms: number };
      const opArb: fc.Arbitrary<Op> = fc.oneof(
        {
          arbitrary: fc.record({
            op: fc.constant("start" as const),
            key: fc.constantFrom("a", "b", "c"),
            everyMs: fc.constantFrom(1000, 1500, 4000),
            missed: fc.constantFrom("skip" as const, "once" as const, "all" as const),
          }),
          weight: 3,
        },
        {
          arbitrary: fc.record({ op: fc.constant("cancel" as const), key: fc.constantFrom("a", "b", "c") }),
          weight: 1,
        },
        {
          arbitrary: fc.record({
            op: fc.constant("advance" as const),
            ms: fc.integer({ min: 0, max: 9000 }),
          }),
          weight: 4,
        },
      );
      let run = 0;
      await fc.assert(
        fc.asyncProperty(fc.array(opArb, { minLength: 2, maxLength: 12 }), async (ops) => {
          run += 1;
          const clock = new SimulatedClock(Date.UTC(2031, 0, 1) + run * 1_000_000_000);
          const system = await newSystem({ clock });
          const id = uniqueId("timer-model");
          const t = ticker(id);
          const fired: number[] = [];
          system.events.on("timer.fired", (e) => {
            if (e.actor === id) fired.push(e.ticks);
          });
          await system.spawn(t.definition);
          // The model: per key, its period, policy and next due; ticks expected per key.
          const model = new Map<string, { everyMs: number; missed: string; due: number }>();
          const expected: Record<string, number> = {};
          let firings = 0;
          let expectedTicks = 0;
          try {
            for (const op of ops) {
              if (op.op === "start") {
                await t.timers().start(op.key, "tick", { n: 0 }, { everyMs: op.everyMs, missed: op.missed });
                model.set(op.key, { everyMs: op.everyMs, missed: op.missed, due: clock.now() + op.everyMs });
              } else if (op.op === "cancel") {
                expect(await t.timers().cancel(op.key)).toBe(model.delete(op.key));
              } else {
                // The armed host timer fires at the earliest due time; the firing then reads the
                // clock after the step: every due tick of every timer is judged at now.
                clock.advance(op.ms);
                const now = clock.now();
                for (const [key, m] of model) {
                  if (m.due > now) continue;
                  let n = 0;
                  while (m.due <= now) {
                    n += 1;
                    m.due += m.everyMs;
                  }
                  const sent =
                    m.missed === "all"
                      ? Math.min(n, MAX_CATCH_UP_TICKS)
                      : m.missed === "once"
                        ? 1
                        : n === 1
                          ? 1
                          : 0;
                  expected[key] = (expected[key] ?? 0) + sent;
                  expectedTicks += sent;
                  firings += 1;
                }
                await waitFor(() => fired.length === firings, 5000, `${firings} firings`);
                await waitFor(() => t.ticks.length === expectedTicks, 5000, `${expectedTicks} ticks`);
              }
            }
            await sleep(30);
            const got: Record<string, number> = {};
            for (const m of t.ticks) {
              const key = m.id.split(":")[1] as string;
              got[key] = (got[key] ?? 0) + 1;
            }
            expect(got).toEqual(Object.fromEntries(Object.entries(expected).filter(([, n]) => n > 0)));
            expect(new Set(t.ticks.map((m) => m.id)).size).toBe(t.ticks.length);
            const listed = await t.timers().list();
            expect(listed.map((i) => [i.key, i.nextDueMs]).sort()).toEqual(
              [...model].map(([key, m]) => [key, m.due]).sort(),
            );
          } finally {
            await system.shutdown();
          }
        }),
        { seed: 1212, numRuns: 25 },
      );
    });
  },
  MASTERS_ONLY,
);

describeBackends(
  "durable timers across a SIGKILL of the hosting process",
  (backend) => {
    it("a second process spawning the actor gets its ticks without starting the timer again", async () => {
      const base = {
        ...backendEnv(backend()),
        ACTOR_ID: uniqueId("timer-proc"),
        EVERY_MS: "150",
        HEARTBEAT_MS: "200",
      };
      const first = await startWorker("timer-worker", { ...base, APP_ID: uniqueId("p1"), ARM: "1" });
      await waitFor(() => (first.output().match(/^tick /gm) ?? []).length >= 2, 10_000, "ticks in process 1");
      await first.kill("SIGKILL");
      const second = await startWorker("timer-worker", { ...base, APP_ID: uniqueId("p2"), ARM: "0" });
      try {
        await waitFor(
          () => (second.output().match(/^tick /gm) ?? []).length >= 3,
          15_000,
          "ticks in process 2",
        );
        const ids = (out: string) => [...out.matchAll(/^tick (\S+) (\S+) (\d+)$/gm)].map((m) => m[1]);
        const one = ids(first.output());
        const two = ids(second.output());
        // The same timer (same generation), and no tick handled by both.
        const gen = (i: string | undefined) => i?.split(":")[2];
        expect(new Set([...one, ...two].map(gen)).size).toBe(1);
        // A tick never fires twice; one that process 1 was handling (or had not yet reported
        // finished: the finish lingers a few ms) when it was killed is delivered again, at least
        // once: only the last ticks process 1 printed may show up in process 2 as well.
        const both = two.filter((i) => one.includes(i));
        expect(both.length).toBeLessThanOrEqual(2);
        expect(one.slice(one.length - both.length)).toEqual(both);
        expect(second.output()).toContain(` ${base.ACTOR_ID} 1`);
      } finally {
        await second.kill("SIGTERM");
      }
    });
  },
  MASTERS_ONLY,
);

describe("the timers hint on the wake-up path (one server, seen with MONITOR)", () => {
  const redis = useRedis();
  const newSystem = useSystems(redis);

  it("a new_message wake-up costs no timers read; a timers_changed hint re-arms without a claim", async () => {
    const id = uniqueId("timer-hint");
    const system = await newSystem();
    const t = ticker(id);
    await system.spawn(t.definition);
    const keys = new Keyspace();
    const reads = { heads: 0, claims: 0 };
    const monitor = await redis().client().monitor();
    monitor.on("monitor", (_time: string, args: string[]) => {
      const command = args[0]?.toLowerCase();
      if (command === "zrange" && args[1] === keys.timerDue(id)) reads.heads += 1;
      if (command === "evalsha" && args.includes(keys.processing(id))) reads.claims += 1;
    });
    try {
      await sleep(100);
      const ref = system.ref<TickProtocol>(id);
      for (let n = 0; n < 20; n++) await ref.tell("tick", { n });
      await waitFor(() => t.ticks.length === 20, 5000, "20 messages");
      await sleep(100);
      expect(reads.heads).toBe(0);
      const claims = reads.claims;
      // What timer-start.lua and timer-cancel.lua publish when another process changes a timer.
      const publisher = redis().client();
      await publisher.publish(keys.channel(id), "timers_changed");
      publisher.disconnect();
      await waitFor(() => reads.heads >= 1, 5000, "a read of the due set's head");
      await sleep(100);
      expect(reads.heads).toBe(1);
      expect(reads.claims).toBe(claims);
    } finally {
      monitor.disconnect();
    }
  });
});

describe("durable timers across a Redis restart with AOF", () => {
  const redis = useRedis({ appendOnly: true });
  const newSystem = useSystems(redis);

  it("the timer is still there after redis-server is killed and restarted, and keeps firing", async () => {
    const id = uniqueId("timer-aof");
    const system = await newSystem();
    const t = ticker(id);
    await system.spawn(t.definition);
    await t.timers().start("beat", "tick", { n: 1 }, { everyMs: 100 });
    await waitFor(() => t.ticks.length >= 2, 5000, "ticks before the restart");
    await system.shutdown();
    await redis().restart(200);
    // A new system: nothing is started again, the timer comes from the AOF.
    const again = await newSystem();
    const t2 = ticker(id);
    await again.spawn(t2.definition);
    await waitFor(() => t2.ticks.length >= 3, 10_000, "ticks after the restart");
    expect(await t2.timers().list()).toMatchObject([{ key: "beat", everyMs: 100 }]);
    // And while a system runs through a restart, it keeps firing once reconnected.
    await redis().restart(300);
    const before = t2.ticks.length;
    await waitFor(() => t2.ticks.length >= before + 3, 15_000, "ticks after a second restart");
    expect(new Set(t2.ticks.map((m) => m.id)).size).toBe(t2.ticks.length);
  });
});
