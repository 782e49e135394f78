/**
 * Virtual time: `createSystem({ clock: new SimulatedClock() })` runs the host-side timers
 * (src/clock.ts) in virtual time. Supervisor backoff and restart intensity, the wake-up of a
 * handler retry, ask timeouts and handler timeouts then happen only when the test advances the
 * clock, and minutes of backoff take no real time. What Redis judges by its own `TIME` (a
 * retry's due time) stays real: that is shown too. Real time is waited for only for Redis I/O.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  AskTimeoutError,
  createSystem,
  defineActor,
  type HostClock,
  InvalidOptionError,
  realTime,
  SimulatedClock,
  type SystemEvents,
  supervisor,
} from "../src/index.js";
import { describeBackends, MASTERS_ONLY, useBackendSystems } from "./harness/backends.js";
import { uniqueId } from "./harness/redis.js";
import { waitFor } from "./harness/system.js";

/**
 * A short real-time pause, only to show that something did NOT happen: long enough for the
 * Redis round trips it would take (a claim, a restart's setup), far shorter than any virtual wait.
 */
const settle = (ms = 300) => new Promise((resolve) => setTimeout(resolve, ms));

const MINUTE = 60_000;

/** Large enough that the sweep (on the virtual clock) never runs in a test unless it says so. */
const NO_SWEEP = { sweepMs: 24 * 60 * MINUTE };

type CrashProto = { crash: { payload: Record<string, never> } };

/** An actor that logs each start (one per incarnation) and crashes on every message. */
function crasher(id: string, starts: string[]) {
  return defineActor<CrashProto>({
    id,
    maxAttempts: 1,
    setup: () => {
      starts.push(id);
    },
    handlers: {
      crash: () => {
        throw new Error("boom");
      },
    },
  });
}

describe("SimulatedClock", () => {
  it("fires timers in due order (ties in the order set), whatever the steps of advance", () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.record({
            delay: fc.integer({ min: 0, max: 1000 }),
            every: fc.option(fc.integer({ min: 1, max: 300 })),
          }),
          {
            maxLength: 12,
          },
        ),
        fc.array(fc.integer({ min: 0, max: 400 }), { maxLength: 12 }),
        (timers, steps) => {
          const run = (advance: (clock: SimulatedClock) => void) => {
            const clock = new SimulatedClock(1_000);
            const fired: string[] = [];
            timers.forEach(({ delay, every }, i) => {
              if (every === null) clock.setTimeout(() => fired.push(`${i}@${clock.now()}`), delay);
              else clock.setInterval(() => fired.push(`${i}@${clock.now()}`), every);
            });
            advance(clock);
            return { fired, now: clock.now() };
          };
          const total = steps.reduce((a, b) => a + b, 0);
          const stepped = run((clock) => {
            for (const step of steps) clock.advance(step);
          });
          const once = run((clock) => clock.advance(total));
          expect(stepped).toEqual(once);
          expect(once.now).toBe(1_000 + total);
          // The oracle: each timer at each of its own due times up to the target, in due order,
          // ties in the order the timers were set.
          const due: [number, number][] = [];
          timers.forEach(({ delay, every }, i) => {
            if (every === null) {
              if (delay <= total) due.push([delay, i]);
            } else {
              for (let at = every; at <= total; at += every) due.push([at, i]);
            }
          });
          due.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
          expect(once.fired).toEqual(due.map(([at, i]) => `${i}@${1_000 + at}`));
        },
      ),
      { seed: 12, numRuns: 200 },
    );
  });

  it("fires timers set by timers within the same step, and not cleared ones", () => {
    const clock = new SimulatedClock(0);
    const fired: string[] = [];
    clock.setTimeout(() => {
      fired.push(`a@${clock.now()}`);
      clock.setTimeout(() => fired.push(`b@${clock.now()}`), 10);
    }, 5);
    const c = clock.setTimeout(() => fired.push("c"), 7);
    clock.clearTimeout(c);
    clock.advance(14);
    expect(fired).toEqual(["a@5"]);
    expect(clock.nextAt).toBe(15);
    clock.advance(1);
    expect(fired).toEqual(["a@5", "b@15"]);
    expect(clock.pending).toBe(0);
    expect(() => clock.advance(-1)).toThrow(RangeError);
    // A timer that advances its own clock is a test bug: refused, and the step still completes.
    const later: string[] = [];
    clock.setTimeout(() => clock.advance(1), 0);
    clock.setTimeout(() => later.push("after"), 1);
    expect(() => clock.advance(1)).toThrow(/from a timer of the same SimulatedClock/);
    expect(later).toEqual(["after"]);
    expect(clock.now()).toBe(16);
  });

  it("refuses a step that never ends: advance(Infinity) and advance(NaN) throw RangeError", () => {
    const clock = new SimulatedClock(0);
    clock.setInterval(() => {}, 1);
    expect(() => clock.advance(Number.POSITIVE_INFINITY)).toThrow(RangeError);
    expect(() => clock.advance(Number.NaN)).toThrow(RangeError);
    expect(clock.now()).toBe(0);
  });

  it("with clears anywhere, fires what a sorted list would (the heap against an oracle)", () => {
    fc.assert(
      fc.property(
        fc.array(fc.record({ delay: fc.integer({ min: 0, max: 500 }), clear: fc.boolean() }), {
          maxLength: 40,
        }),
        fc.array(fc.integer({ min: 0, max: 200 }), { maxLength: 8 }),
        (timers, steps) => {
          const clock = new SimulatedClock(0);
          const fired: number[] = [];
          const handles = timers.map(({ delay }, i) => clock.setTimeout(() => fired.push(i), delay));
          timers.forEach(({ clear }, i) => {
            if (clear) clock.clearTimeout(handles[i]);
          });
          const live = timers.filter((t) => !t.clear).length;
          expect(clock.pending).toBe(live);
          const total = steps.reduce((a, b) => a + b, 0);
          for (const step of [...steps, 0]) clock.advance(step);
          const want = timers
            .map((t, i) => ({ ...t, i }))
            .filter((t) => !t.clear && t.delay <= total)
            .sort((a, b) => a.delay - b.delay || a.i - b.i)
            .map((t) => t.i);
          expect(fired).toEqual(want);
          expect(clock.pending).toBe(live - want.length);
          const left = timers.filter((t) => !t.clear && t.delay > total).map((t) => t.delay);
          expect(clock.nextAt).toBe(left.length ? Math.min(...left) : undefined);
        },
      ),
      { seed: 7, numRuns: 200 },
    );
  });

  it("keeps 200,000 timers: nextAt, clears and firing stay cheap (no spread, no quadratic filter)", () => {
    const clock = new SimulatedClock(0);
    const n = 200_000;
    let fired = 0;
    const started = performance.now();
    const handles = Array.from({ length: n }, (_, i) => clock.setTimeout(() => (fired += 1), n - i));
    expect(clock.nextAt).toBe(1);
    for (let i = 0; i < n; i += 2) clock.clearTimeout(handles[i]);
    expect(clock.pending).toBe(n / 2);
    clock.advance(n);
    expect(fired).toBe(n / 2);
    expect(clock.pending).toBe(0);
    expect(clock.nextAt).toBeUndefined();
    // Quadratic work on 200k timers takes minutes; this takes well under a second.
    expect(performance.now() - started).toBeLessThan(10_000);
  });
});

describe("createSystem({ clock })", () => {
  it("refuses a clock without the five functions, before connecting", async () => {
    const bad = [{}, { now: () => 0 }, 42, { ...realTime(), setInterval: "soon" }];
    for (const clock of bad) {
      const made = createSystem({
        appId: uniqueId("v"),
        redis: "redis://127.0.0.1:1",
        clock: clock as HostClock,
      });
      await expect(made).rejects.toBeInstanceOf(InvalidOptionError);
      await expect(made).rejects.toThrow(/option clock: .*HostClock/);
    }
  });
});

describeBackends(
  "virtual time",
  (backend) => {
    const newSystem = useBackendSystems(backend);

    it("restarts a crashed actor only when the virtual clock passes the supervisor's backoff", async () => {
      const clock = new SimulatedClock();
      const system = await newSystem({ clock, ...NO_SWEEP });
      const id = uniqueId("crasher");
      const starts: string[] = [];
      const restarted: SystemEvents["actor.restarted"][] = [];
      system.events.on("actor.restarted", (e) => restarted.push(e));
      // Two, then four minutes of backoff; in real time this test would take six minutes.
      const backoff = { minMs: 2 * MINUTE, maxMs: 30 * MINUTE, factor: 2, jitter: 0 };
      await system.spawn(
        supervisor({
          id: uniqueId("sup"),
          maxRestarts: 5,
          withinMs: 60 * MINUTE,
          backoff,
          children: [crasher(id, starts)],
        }),
      );
      expect(starts).toEqual([id]);

      await system.ref<CrashProto>(id).tell("crash", {});
      await waitFor(() => restarted.length === 1, 5000, "the first restart to be scheduled");
      expect(restarted[0]).toMatchObject({ actor: id, attempt: 1, delayMs: 2 * MINUTE });
      await settle();
      expect(starts.length).toBe(1);
      clock.advance(2 * MINUTE - 1);
      await settle();
      expect(starts.length).toBe(1);
      clock.advance(1);
      await waitFor(() => starts.length === 2, 5000, "the restart after the backoff");

      // The restarted incarnation serves its inbox: the second crash backs off twice as long.
      await system.ref<CrashProto>(id).tell("crash", {});
      await waitFor(() => restarted.length === 2, 5000, "the second restart to be scheduled");
      expect(restarted[1]).toMatchObject({ attempt: 2, delayMs: 4 * MINUTE });
      clock.advance(4 * MINUTE - 1);
      await settle();
      expect(starts.length).toBe(2);
      clock.advance(1);
      await waitFor(() => starts.length === 3, 5000, "the second restart");
    });

    it("judges restart intensity (maxRestarts within withinMs) in virtual time", async () => {
      const backoff = { minMs: MINUTE, maxMs: MINUTE, factor: 1, jitter: 0 };
      const withinMs = 10 * MINUTE;

      /** A crashing actor under a supervisor with maxRestarts 1 within withinMs, in virtual time. */
      const underSupervisor = async (name: string) => {
        const clock = new SimulatedClock();
        const system = await newSystem({ clock, ...NO_SWEEP });
        const id = uniqueId(name);
        const sup = uniqueId("sup");
        const run = { clock, system, id, sup, starts: [] as string[], failed: [] as string[], restarts: 0 };
        system.events.on("supervisor.failed", (e) => run.failed.push(e.supervisor));
        system.events.on("actor.restarted", (e) => {
          if (e.supervisor === sup) run.restarts += 1;
        });
        await system.spawn(
          supervisor({ id: sup, maxRestarts: 1, withinMs, backoff, children: [crasher(id, run.starts)] }),
        );
        return run;
      };

      // Crashes 11 virtual minutes apart: each window holds one restart, the supervisor carries on.
      {
        const run = await underSupervisor("spaced");
        for (let round = 1; round <= 3; round++) {
          await run.system.ref<CrashProto>(run.id).tell("crash", {});
          // The restart is scheduled (its backoff timer is set) before it is advanced past.
          await waitFor(() => run.restarts === round, 5000, "the restart to be scheduled");
          run.clock.advance(MINUTE);
          await waitFor(() => run.starts.length === round + 1, 5000, `restart ${round}`);
          run.clock.advance(withinMs);
        }
        expect(run.failed).toEqual([]);
      }

      // The same crashes with no virtual time between them: the second one exceeds maxRestarts.
      {
        const run = await underSupervisor("burst");
        await run.system.ref<CrashProto>(run.id).tell("crash", {});
        await waitFor(() => run.restarts === 1, 5000, "the restart to be scheduled");
        run.clock.advance(MINUTE);
        await waitFor(() => run.starts.length === 2, 5000, "the first restart");
        run.clock.advance(withinMs - MINUTE - 1);
        await run.system.ref<CrashProto>(run.id).tell("crash", {});
        await waitFor(() => run.failed.includes(run.sup), 5000, "the supervisor to give up");
        expect(run.starts.length).toBe(2);
        expect(run.restarts).toBe(1);
      }
    });

    it("wakes a handler retry when the virtual clock passes retryBackoff; Redis' clock decides when it is due", async () => {
      const clock = new SimulatedClock();
      const system = await newSystem({ clock, ...NO_SWEEP });
      const redis = backend().client();
      const keys = backend().keys;
      type Proto = { job: { payload: Record<string, never> } };
      const failedIds: string[] = [];
      system.events.on("message.failed", (e) => failedIds.push(e.actor));
      /** Redis' clock, ms. */
      const redisNow = async () => {
        const [seconds, micros] = await redis.time();
        return Number(seconds) * 1000 + Number(micros) / 1000;
      };
      /** How far in Redis' future the one entry of `app`'s processing set is due, ms. */
      const dueIn = async (app: string) => {
        const [, score] = (await redis.zrange(keys.processing(app), 0, 0, "WITHSCORES")) as string[];
        return score === undefined ? Number.NaN : Number(score) - (await redisNow());
      };

      // A short backoff: Redis' clock passes the retry's due time while the virtual clock stands
      // still; nothing wakes the actor (no sweep, no PUBLISH) until the virtual clock passes it.
      const shortId = uniqueId("retry-short");
      const shortRuns: number[] = [];
      await system.spawn(
        defineActor<Proto>({
          id: shortId,
          maxAttempts: 3,
          onFailure: "resume",
          retryBackoff: { minMs: 300, maxMs: 300, jitter: 0 },
          handlers: {
            job: (_p, ctx) => {
              shortRuns.push(ctx.attempt);
              if (ctx.attempt === 1) throw new Error("first attempt fails");
            },
          },
        }),
      );
      await system.ref<Proto>(shortId).tell("job", {});
      await waitFor(() => failedIds.includes(shortId), 5000, "the first attempt to fail");
      // Written (its lease gone) and due by Redis' clock, yet not run again.
      await waitFor(async () => (await dueIn(shortId)) < 0, 5000, "the retry to be due in Redis");
      await settle();
      expect(shortRuns).toEqual([1]);
      clock.advance(300);
      await waitFor(() => shortRuns.length === 2, 5000, "the retry after the virtual wake-up");
      expect(shortRuns).toEqual([1, 2]);

      // A long backoff: the retry's due time is written on Redis' clock (retryAtMs), so advancing
      // the virtual clock wakes the actor but Redis does not hand the message out before then.
      const longId = uniqueId("retry-long");
      const longRuns: number[] = [];
      const claimed: number[] = [];
      system.events.on("message.claimed", (e) => {
        if (e.actor === longId) claimed.push(e.count);
      });
      await system.spawn(
        defineActor<Proto>({
          id: longId,
          maxAttempts: 3,
          onFailure: "resume",
          retryBackoff: { minMs: 5 * MINUTE, maxMs: 5 * MINUTE, jitter: 0 },
          handlers: {
            job: (_p, ctx) => {
              longRuns.push(ctx.attempt);
              throw new Error("fails");
            },
          },
        }),
      );
      await system.ref<Proto>(longId).tell("job", {});
      await waitFor(() => failedIds.includes(longId), 5000, "the first attempt to fail");
      // Due in five minutes of Redis' time (the lease, 30 s, is replaced by the retry's due time).
      await waitFor(async () => (await dueIn(longId)) > 4 * MINUTE, 5000, "the retry wait to be written");
      expect(await dueIn(longId)).toBeLessThanOrEqual(5 * MINUTE + 1000);
      clock.advance(5 * MINUTE);
      // The wake-up fires and the actor claims, but Redis hands nothing out before its due time.
      await settle();
      expect(longRuns).toEqual([1]);
      expect(claimed).toEqual([1]);
      expect(await dueIn(longId)).toBeGreaterThan(4 * MINUTE);
    });

    it("times an ask out in virtual time", async () => {
      const clock = new SimulatedClock();
      const system = await newSystem({ clock, askTimeoutMs: 10 * MINUTE, ...NO_SWEEP });
      // Nobody serves this id: the request waits in its inbox, unanswered.
      const nobody = uniqueId("nobody");
      const timeouts: SystemEvents["ask.timeout"][] = [];
      system.events.on("ask.timeout", (e) => timeouts.push(e));
      let outcome: unknown;
      const explicit = system
        .ref(nobody)
        .ask("ping", {}, { timeoutMs: 2 * MINUTE })
        .catch((err: unknown) => {
          outcome = err;
        });
      let defaultOutcome: unknown;
      const byDefault = system
        .ref(nobody)
        .ask("ping", {})
        .catch((err: unknown) => {
          defaultOutcome = err;
        });
      await settle();
      expect(outcome).toBeUndefined();
      clock.advance(2 * MINUTE - 1);
      await settle(50);
      expect(outcome).toBeUndefined();
      clock.advance(1);
      await explicit;
      expect(outcome).toBeInstanceOf(AskTimeoutError);
      expect(defaultOutcome).toBeUndefined();
      clock.advance(8 * MINUTE);
      await byDefault;
      expect(defaultOutcome).toBeInstanceOf(AskTimeoutError);
      expect(timeouts.map((t) => t.timeoutMs)).toEqual([2 * MINUTE, 10 * MINUTE]);
    });

    it("passivates an idle family instance after idleMs of virtual time", async () => {
      const clock = new SimulatedClock();
      const heartbeatMs = 1000;
      const system = await newSystem({ clock, heartbeatMs, ...NO_SWEEP });
      const family = uniqueId("fam");
      const idleMs = 10 * MINUTE;
      type Proto = { hi: { payload: Record<string, never> } };
      const handled: string[] = [];
      const stopped: SystemEvents["actor.stopped"][] = [];
      system.events.on("actor.stopped", (e) => stopped.push(e));
      const pool = await system.spawn(
        defineActor<Proto>({
          family,
          idleMs,
          handlers: {
            hi: (_p, ctx) => {
              handled.push(ctx.self.id);
            },
          },
        }),
      );
      await pool.ref("1").tell("hi", {});
      await waitFor(() => handled.length === 1, 5000, "the instance to handle its message");
      // The pool's tick runs every heartbeatMs of virtual time; idle, but not for idleMs yet.
      clock.advance(idleMs - 5 * heartbeatMs);
      await settle();
      expect(stopped).toEqual([]);
      clock.advance(6 * heartbeatMs);
      await waitFor(() => stopped.length === 1, 5000, "the passivation");
      expect(stopped[0]).toEqual({ actor: `${family}:1`, reason: "passivated" });
    });

    it("times a handler out (handlerTimeoutMs) in virtual time", async () => {
      const clock = new SimulatedClock();
      const system = await newSystem({ clock, ...NO_SWEEP });
      const id = uniqueId("slow");
      type Proto = { work: { payload: Record<string, never> } };
      let started = 0;
      let aborted: unknown;
      const failures: SystemEvents["message.failed"][] = [];
      system.events.on("message.failed", (e) => failures.push(e));
      await system.spawn(
        defineActor<Proto>({
          id,
          maxAttempts: 1,
          onFailure: "resume",
          handlerTimeoutMs: 3 * MINUTE,
          handlers: {
            // Never settles; notes the abort its timeout sends.
            work: (_p, ctx) =>
              new Promise<void>(() => {
                started += 1;
                ctx.signal.addEventListener("abort", () => {
                  aborted = ctx.signal.reason;
                });
              }),
          },
        }),
      );
      await system.ref<Proto>(id).tell("work", {});
      await waitFor(() => started === 1, 5000, "the handler to start");
      await settle();
      expect(failures).toEqual([]);
      clock.advance(3 * MINUTE - 1);
      await settle(50);
      expect(aborted).toBeUndefined();
      clock.advance(1);
      await waitFor(() => failures.length === 1, 5000, "the handler timeout");
      expect(failures[0]).toMatchObject({ actor: id, reason: "handler-error", deadLettered: true });
      expect(failures[0]?.error).toMatch(/HandlerTimeoutError/);
      expect((aborted as Error).name).toBe("HandlerTimeoutError");
    });
  },
  MASTERS_ONLY,
);
