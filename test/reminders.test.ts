/**
 * Reminders (src/timers.ts, ActorTimers.remind): a passivated family instance's next timer tick
 * waits in Redis as a scheduled message with the tick's own id, and activates the instance at its
 * due time, without any other message. Real time, real Redis, one server and a cluster: the tick
 * count is exact (consecutive due times, no duplicate id) across passivations; a cancel or a
 * replace from a later activation cancels the waiting reminder; a graceful stop of the process
 * holding the instance leaves a reminder that another member of the pool acts on; a SIGKILLed
 * holder (no reminder written) is adopted by the pool, whose new owner sends the due tick.
 */
import { expect, it } from "vitest";
import { type ActorSystem, defineActor, type Envelope } from "../src/index.js";
import { backendEnv, describeBackends, MASTERS_ONLY, useBackendSystems } from "./harness/backends.js";
import { uniqueId } from "./harness/redis.js";
import { type ChildWorker, startWorker, waitFor } from "./harness/system.js";

type Proto = {
  tick: { payload: { n: number } };
  arm: { payload: { everyMs: number; n: number } };
  disarm: { payload: null };
};

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The due time (ms) a tick's id ends with (`timer:<key>:<gen>:<due>`). */
const dueOf = (m: Envelope) => Number(m.id.split(":").at(-1));
const genOf = (m: Envelope) => m.id.split(":").at(-2);

/** A family whose instances record their ticks; `arm` starts (or replaces) the timer `beat`. */
function family(name: string, idleMs: number) {
  const ticks: Envelope[] = [];
  const definition = defineActor<Proto>({
    family: name,
    idleMs,
    handlers: {
      tick: (_p, ctx) => {
        ticks.push(ctx.message);
      },
      arm: async (p, ctx) => {
        await ctx.timers.start("beat", "tick", { n: p.n }, { everyMs: p.everyMs });
      },
      disarm: async (_p, ctx) => {
        await ctx.timers.cancel("beat");
      },
    },
  });
  return { definition, ticks };
}

/** Counts a system's activations and passivations of `app`. */
function lifecycle(system: ActorSystem, app: string) {
  const seen = { activated: 0, passivated: 0 };
  system.events.on("actor.activated", (e) => {
    if (e.actor === app) seen.activated += 1;
  });
  system.events.on("actor.stopped", (e) => {
    if (e.actor === app) seen.passivated += 1;
  });
  return seen;
}

describeBackends(
  "reminders: timers wake passivated family instances",
  (backend) => {
    const newSystem = useBackendSystems(backend);
    /** Fast heartbeats: the pool looks for idle instances every 100 ms. */
    const fast = { heartbeatMs: 100, sweepMs: 600_000 };

    it("a passivated instance is activated by each of its ticks, without any message, each tick once", async () => {
      const name = uniqueId("rfam");
      const app = `${name}:1`;
      const f = family(name, 250);
      const system = await newSystem(fast);
      const seen = lifecycle(system, app);
      await system.spawn(f.definition);
      await system.ref<Proto>(app).tell("arm", { everyMs: 1000, n: 1 });
      await waitFor(() => f.ticks.length >= 4, 10_000, "4 ticks");
      // Each tick came after a passivation: the instance was activated by it (only one message sent).
      expect(seen.passivated).toBeGreaterThanOrEqual(3);
      expect(seen.activated).toBeGreaterThanOrEqual(4);
      const ids = f.ticks.map((m) => m.id);
      expect(new Set(ids).size).toBe(ids.length);
      expect(new Set(f.ticks.map(genOf)).size).toBe(1);
      const dues = f.ticks.map(dueOf);
      for (let i = 1; i < dues.length; i++) expect((dues[i] as number) - (dues[i - 1] as number)).toBe(1000);
      for (const m of f.ticks) expect(m.sender).toBe(app);
      // A tick arrives at its due time, not at a later activation.
      for (const m of f.ticks) expect(m.timestamp * 1000).toBe(dueOf(m));
      // Between ticks the next one waits as a scheduled message with the tick's own id.
      const client = backend().client();
      let head: string[] = [];
      await waitFor(
        async () => {
          head = await client.zrange(backend().keys.scheduled(app), 0, 0, "WITHSCORES");
          return head.length === 2 && Number(head[1]) > (dues.at(-1) as number);
        },
        5000,
        "the next reminder",
      );
      const [id, score] = head;
      const reminderDue = Math.floor(Number(score));
      expect(id).toBe(`timer:beat:${genOf(f.ticks[0] as Envelope)}:${reminderDue}`);
      // On the timer's grid (a tick may have been handled since `dues` was read).
      expect((reminderDue - (dues[0] as number)) % 1000).toBe(0);
    });

    it("an instance activated by a message before its tick: the reminder is the tick, once", async () => {
      const name = uniqueId("rmsg");
      const app = `${name}:1`;
      const f = family(name, 300);
      const system = await newSystem(fast);
      const seen = lifecycle(system, app);
      await system.spawn(f.definition);
      await system.ref<Proto>(app).tell("arm", { everyMs: 1500, n: 1 });
      await waitFor(() => seen.passivated >= 1, 5000, "a passivation");
      // Kept active past the due time by messages: its own timer and the reminder meet.
      const until = Date.now() + 2500;
      while (Date.now() < until) {
        await system.ref<Proto>(app).tell("tick", { n: 0 });
        await sleep(100);
      }
      await waitFor(() => f.ticks.filter((m) => m.id.startsWith("timer:")).length >= 2, 5000, "2 ticks");
      const timerTicks = f.ticks.filter((m) => m.id.startsWith("timer:")).map((m) => m.id);
      expect(new Set(timerTicks).size).toBe(timerTicks.length);
      const dues = f.ticks.filter((m) => m.id.startsWith("timer:")).map(dueOf);
      for (let i = 1; i < dues.length; i++) expect((dues[i] as number) - (dues[i - 1] as number)).toBe(1500);
    });

    it("cancel from a later activation cancels the waiting reminder: no stray tick", async () => {
      const name = uniqueId("rcan");
      const app = `${name}:1`;
      const f = family(name, 200);
      const system = await newSystem(fast);
      const seen = lifecycle(system, app);
      await system.spawn(f.definition);
      await system.ref<Proto>(app).tell("arm", { everyMs: 2000, n: 1 });
      await waitFor(() => seen.passivated >= 1, 5000, "a passivation");
      const client = backend().client();
      const [waiting] = await client.zrange(backend().keys.scheduled(app), 0, 0);
      expect(waiting).toMatch(/^timer:beat:/);
      await system.ref<Proto>(app).tell("disarm", null);
      await waitFor(
        async () => (await client.zcard(backend().keys.scheduled(app))) === 0,
        5000,
        "the reminder cancelled",
      );
      expect(await client.hget(backend().keys.message(app, waiting as string), "status")).toBe("cancelled");
      await sleep(2500);
      expect(f.ticks).toHaveLength(0);
    });

    it("replace from a later activation: only the new timer's ticks arrive", async () => {
      const name = uniqueId("rrep");
      const app = `${name}:1`;
      const f = family(name, 200);
      const system = await newSystem(fast);
      const seen = lifecycle(system, app);
      await system.spawn(f.definition);
      await system.ref<Proto>(app).tell("arm", { everyMs: 1500, n: 1 });
      await waitFor(() => seen.passivated >= 1, 5000, "a passivation");
      await system.ref<Proto>(app).tell("arm", { everyMs: 1000, n: 2 });
      await waitFor(() => f.ticks.length >= 3, 10_000, "3 ticks");
      await sleep(300);
      expect(f.ticks.map((m) => (m.payload as { n: number }).n).every((n) => n === 2)).toBe(true);
      expect(new Set(f.ticks.map(genOf)).size).toBe(1);
      const ids = f.ticks.map((m) => m.id);
      expect(new Set(ids).size).toBe(ids.length);
      expect(seen.passivated).toBeGreaterThanOrEqual(3);
    });

    it("the process holding the instance stops: another pool member activates it at its tick", async () => {
      const name = uniqueId("rstop");
      const app = `${name}:1`;
      const a = family(name, 60_000);
      const b = family(name, 60_000);
      const one = await newSystem(fast);
      const two = await newSystem(fast);
      const seenOne = lifecycle(one, app);
      const seenTwo = lifecycle(two, app);
      await one.spawn(a.definition);
      await two.spawn(b.definition);
      await one.ref<Proto>(app).tell("arm", { everyMs: 1500, n: 1 });
      await waitFor(() => seenOne.activated + seenTwo.activated === 1, 5000, "an activation");
      const [holder, seenOther, otherTicks] =
        seenOne.activated === 1 ? [one, seenTwo, b.ticks] : [two, seenOne, a.ticks];
      await holder.shutdown();
      const stoppedAt = Date.now();
      await waitFor(() => otherTicks.length >= 2, 10_000, "2 ticks in the other process");
      expect(seenOther.activated).toBeGreaterThanOrEqual(1);
      expect(a.ticks.length + b.ticks.length).toBe(otherTicks.length);
      const dues = otherTicks.map(dueOf);
      expect(dues[0] as number).toBeGreaterThanOrEqual(stoppedAt - 1500);
      expect((dues[1] as number) - (dues[0] as number)).toBe(1500);
      expect(new Set(otherTicks.map((m) => m.id)).size).toBe(otherTicks.length);
    });
  },
  MASTERS_ONLY,
);

describeBackends(
  "reminders: a SIGKILLed holder writes none; the pool adopts the instance",
  (backend) => {
    const newSystem = useBackendSystems(backend);

    it("the new owner activates it (dead member's active set) and sends its due tick", async () => {
      const name = uniqueId("rkill");
      const app = `${name}:1`;
      const appId = uniqueId("rk");
      const workers: ChildWorker[] = [];
      try {
        const first = await startWorker("reminder-worker", {
          ...backendEnv(backend()),
          APP_ID: appId,
          FAMILY: name,
          INSTANCE: app,
          EVERY_MS: "1000",
          HEARTBEAT_MS: "200",
        });
        workers.push(first);
        await waitFor(() => /^tick /m.test(first.output()), 10_000, "a tick in process 1");
        await first.kill("SIGKILL");
        // Another member of the pool, in this process.
        const f = family(name, 60_000);
        const system = await newSystem({ heartbeatMs: 200 });
        const seen = lifecycle(system, app);
        await system.spawn(f.definition);
        await waitFor(() => f.ticks.length >= 1, 15_000, "a tick in process 2");
        expect(seen.activated).toBeGreaterThanOrEqual(1);
        const before = [...first.output().matchAll(/^tick (\S+)$/gm)].map((m) => m[1]);
        // Not a tick process 1 had handled (at most the one in hand when it was killed).
        const again = f.ticks.filter((m) => before.includes(m.id));
        expect(again.length).toBeLessThanOrEqual(1);
        expect(new Set(f.ticks.map((m) => m.id)).size).toBe(f.ticks.length);
      } finally {
        await Promise.all(workers.map((w) => w.kill("SIGKILL")));
      }
    });
  },
  MASTERS_ONLY,
);
