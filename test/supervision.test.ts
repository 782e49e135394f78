/**
 * Supervision: OTP strategies, restart intensity and escalation, restart types, backoff,
 * failure directives, message retries, re-subscription after a restart.
 */
import type { Redis } from "ioredis";
import { describe, expect, it } from "vitest";
import {
  type ActorDefinition,
  type ActorSystem,
  defineActor,
  type FailureDirective,
  type RestartType,
  type SupervisorStrategy,
  supervisor,
} from "../src/index.js";
import { type Backend, describeBackends, MASTERS_ONLY, useBackendSystems } from "./harness/backends.js";
import { uniqueId } from "./harness/redis.js";
import { waitFor } from "./harness/system.js";

type Proto = { crash: { payload: { why: string } }; count: { payload: Record<string, never> } };

/** Records every setup (one per incarnation) and every handled count, in one log. */
function probe(
  id: string,
  log: string[],
  options: { onFailure?: FailureDirective; restart?: RestartType } = {},
): ActorDefinition<Proto, { n: number }> {
  return defineActor<Proto, { n: number }>({
    id,
    maxAttempts: 1,
    ...options,
    setup: () => {
      log.push(`start:${id}`);
      return { n: 0 };
    },
    handlers: {
      crash: (p) => {
        throw new Error(p.why);
      },
      count: (_p, ctx) => {
        ctx.state.n += 1;
        log.push(`count:${id}:${ctx.state.n}`);
      },
    },
  });
}

const fast = { backoff: { minMs: 10, maxMs: 40, jitter: 0 } };

async function crash(system: ActorSystem, id: string, why = "boom") {
  await system.ref<Proto>(id).tell("crash", { why });
}

function starts(log: string[], id: string): number {
  return log.filter((l) => l === `start:${id}`).length;
}

/** Three probes a, b, c under one supervisor with `strategy`, started in that order. */
async function spawnTrio(system: ActorSystem, strategy: SupervisorStrategy, log: string[]) {
  const ids = [uniqueId("a"), uniqueId("b"), uniqueId("c")] as const;
  await system.spawn(supervisor({ id: "s", strategy, ...fast, children: ids.map((id) => probe(id, log)) }));
  return ids;
}

/**
 * Counts the subscribers of the channel that wakes `app` when a redactor system sends to it: on
 * a cluster its sharded wake-up channel, asked of the master that serves its slot; on a server
 * `channel:<app>`.
 */
async function wakeSubscribers(backend: Backend): Promise<(app: string) => Promise<number>> {
  const { cluster, keys } = backend;
  if (cluster) {
    const clients = new Map<number, Redis>();
    return async (app) => {
      const wake = keys.wakeChannel(app) as string;
      const master = await cluster.masterOf(wake);
      if (!clients.has(master.port)) clients.set(master.port, master.client());
      const client = clients.get(master.port) as Redis;
      const [, count] = (await client.call("PUBSUB", "SHARDNUMSUB", wake)) as [string, number];
      return Number(count);
    };
  }
  const admin = backend.client() as Redis;
  return async (app) => {
    const [, count] = (await admin.pubsub("NUMSUB", keys.channel(app))) as [string, number];
    return Number(count);
  };
}

describeBackends(
  "supervision",
  (backend) => {
    const newSystem = useBackendSystems(backend);

    describe("supervision strategies", () => {
      it("one_for_one restarts only the crashed child, with fresh state", async () => {
        const system = await newSystem();
        const log: string[] = [];
        const [a, b, c] = await spawnTrio(system, "one_for_one", log);
        await system.ref<Proto>(b).tell("count", {});
        await waitFor(() => log.includes(`count:${b}:1`), 2000, "first count");
        await crash(system, b);
        await waitFor(() => starts(log, b) === 2, 3000, "b restarted");
        await system.ref<Proto>(b).tell("count", {});
        await waitFor(
          () =>
            log.includes(`count:${b}:1`) &&
            log.lastIndexOf(`count:${b}:1`) > log.indexOf(`start:${b}`, log.indexOf(`start:${b}`) + 1),
          2000,
          "fresh state",
        );
        expect([starts(log, a), starts(log, b), starts(log, c)]).toEqual([1, 2, 1]);
      });

      it("one_for_all stops the others in reverse order and restarts all in order", async () => {
        const system = await newSystem();
        const log: string[] = [];
        system.events.on("actor.stopped", (e) => log.push(`stop:${e.actor}:${e.reason}`));
        const [a, b, c] = await spawnTrio(system, "one_for_all", log);
        log.length = 0;
        await crash(system, b);
        await waitFor(() => log.filter((l) => l.startsWith("start:")).length === 3, 3000, "all restarted");
        expect(log).toEqual([
          `stop:${b}:crash`,
          `stop:${c}:stop`,
          `stop:${a}:stop`,
          `start:${a}`,
          `start:${b}`,
          `start:${c}`,
        ]);
      });

      it("rest_for_one restarts the crashed child and those started after it", async () => {
        const system = await newSystem();
        const log: string[] = [];
        const [, b, c] = await spawnTrio(system, "rest_for_one", log);
        log.length = 0;
        await crash(system, b);
        await waitFor(() => log.length === 2, 3000, "restarts");
        await new Promise((r) => setTimeout(r, 100));
        expect(log).toEqual([`start:${b}`, `start:${c}`]);
      });
    });

    describe("restart intensity and escalation", () => {
      it("a supervisor over its intensity stops its children and its parent restarts it", async () => {
        const system = await newSystem();
        const log: string[] = [];
        const [a, b] = [uniqueId("a"), uniqueId("b")];
        const failures: string[] = [];
        system.events.on("supervisor.failed", (e) => failures.push(e.supervisor));
        const inner = supervisor({
          id: "inner",
          maxRestarts: 1,
          withinMs: 10_000,
          ...fast,
          children: [probe(a, log), probe(b, log)],
        });
        await system.spawn(supervisor({ id: "outer", maxRestarts: 5, ...fast, children: [inner] }));
        await crash(system, a);
        await waitFor(() => starts(log, a) === 2, 3000, "first restart");
        await crash(system, a);
        // The second crash exceeds inner's intensity: inner fails, outer restarts inner (a and b anew).
        await waitFor(
          () => failures.includes("inner") && starts(log, b) === 2 && starts(log, a) === 3,
          3000,
          "escalation",
        );
        expect(failures).toEqual(["inner"]);
      });

      it("the root supervisor over its intensity stops the system with a system.failed event", async () => {
        const system = await newSystem({ rootIntensity: { maxRestarts: 1, withinMs: 10_000 } });
        const log: string[] = [];
        const a = uniqueId("a");
        const failed: string[] = [];
        system.events.on("system.failed", (e) => failed.push(e.error));
        await system.spawn(probe(a, log));
        await crash(system, a, "first");
        await waitFor(() => starts(log, a) === 2, 5000, "restart");
        await crash(system, a, "second");
        await system.stopped;
        expect(failed).toHaveLength(1);
        expect(failed[0]).toMatch(
          /supervisor "root" gave up after 1 restarts within 10000 ms \(last: second\)/,
        );
        expect(await backend().client().hget(backend().keys.status(a), "status")).toBe("offline");
      });

      it("directive escalate fails the supervisor at once", async () => {
        const system = await newSystem();
        const log: string[] = [];
        const [a, b] = [uniqueId("a"), uniqueId("b")];
        const failures: string[] = [];
        system.events.on("supervisor.failed", (e) => failures.push(`${e.supervisor}:${e.error}`));
        await system.spawn(
          supervisor({
            id: "outer",
            ...fast,
            children: [
              supervisor({
                id: "inner",
                ...fast,
                children: [probe(a, log, { onFailure: "escalate" }), probe(b, log)],
              }),
            ],
          }),
        );
        await crash(system, a, "unrecoverable");
        await waitFor(() => starts(log, b) === 2, 3000, "inner restarted by outer");
        expect(failures).toEqual(["inner:unrecoverable"]);
      });
    });

    describe("restart types and directives", () => {
      it("permanent and transient children restart after a crash; temporary ones do not", async () => {
        const system = await newSystem();
        const log: string[] = [];
        const [p, t, tmp] = [uniqueId("perm"), uniqueId("trans"), uniqueId("temp")];
        await system.spawn(
          supervisor({
            id: "s",
            maxRestarts: 10,
            ...fast,
            children: [
              probe(p, log),
              probe(t, log, { restart: "transient" }),
              probe(tmp, log, { restart: "temporary" }),
            ],
          }),
        );
        await Promise.all([crash(system, p), crash(system, t), crash(system, tmp)]);
        await waitFor(() => starts(log, p) === 2 && starts(log, t) === 2, 3000, "restarts");
        await new Promise((r) => setTimeout(r, 150));
        expect(starts(log, tmp)).toBe(1);
        expect(system.actorIds()).not.toContain(tmp);
        expect((await system.status(tmp))?.online).toBe(false);
      });

      it("directive stop ends the actor normally: transient stays stopped, permanent comes back", async () => {
        const system = await newSystem();
        const log: string[] = [];
        const [t, p] = [uniqueId("trans"), uniqueId("perm")];
        await system.spawn(
          supervisor({
            id: "s",
            ...fast,
            children: [
              probe(t, log, { onFailure: "stop", restart: "transient" }),
              probe(p, log, { onFailure: "stop" }),
            ],
          }),
        );
        await crash(system, t);
        await crash(system, p);
        await waitFor(
          async () => (await system.status(t))?.status === "offline" && starts(log, p) === 2,
          3000,
          "ends",
        );
        await new Promise((r) => setTimeout(r, 100));
        expect(starts(log, t)).toBe(1);
        expect(system.actorIds()).not.toContain(t);
        expect(system.actorIds()).toContain(p);
      });

      it("directive resume keeps the actor and its state", async () => {
        const system = await newSystem();
        const log: string[] = [];
        const a = uniqueId("a");
        await system.spawn(probe(a, log, { onFailure: "resume" }));
        const ref = system.ref<Proto>(a);
        await ref.tell("count", {});
        await crash(system, a);
        await ref.tell("count", {});
        await waitFor(() => log.includes(`count:${a}:2`), 3000, "state kept");
        expect(starts(log, a)).toBe(1);
      });
    });

    describe("backoff and observability", () => {
      it("delays restarts exponentially and reports each one", async () => {
        const system = await newSystem();
        const log: string[] = [];
        const a = uniqueId("a");
        const restarts: { attempt: number; delayMs: number; reason: string; supervisor: string }[] = [];
        system.events.on("actor.restarted", (e) => restarts.push(e));
        await system.spawn(
          supervisor({
            id: "s",
            maxRestarts: 5,
            backoff: { minMs: 80, factor: 2, maxMs: 1000, jitter: 0 },
            children: [probe(a, log)],
          }),
        );
        const times: number[] = [];
        for (let i = 1; i <= 3; i++) {
          const crashedAt = Date.now();
          await crash(system, a, `crash ${i}`);
          await waitFor(() => starts(log, a) === i + 1, 5000, `restart ${i}`);
          times.push(Date.now() - crashedAt);
        }
        expect(restarts.map((r) => [r.attempt, r.delayMs, r.reason, r.supervisor])).toEqual([
          [1, 80, "crash 1", "s"],
          [2, 160, "crash 2", "s"],
          [3, 320, "crash 3", "s"],
        ]);
        expect(times[0]).toBeGreaterThanOrEqual(80);
        expect(times[1]).toBeGreaterThanOrEqual(160);
        expect(times[2]).toBeGreaterThanOrEqual(320);
      });

      it("a restarted actor re-subscribes its channel and is woken by pub/sub again", async () => {
        // No sweep during the test: only a PUBLISH can wake the actor quickly.
        const system = await newSystem({ sweepMs: 60_000 });
        const log: string[] = [];
        const a = uniqueId("a");
        await system.spawn(supervisor({ id: "s", ...fast, children: [probe(a, log)] }));
        await crash(system, a);
        await waitFor(() => starts(log, a) === 2, 3000, "restart");
        const subscribers = await wakeSubscribers(backend());
        await waitFor(async () => (await subscribers(a)) === 1, 2000, "re-subscription");
        await system.ref<Proto>(a).tell("count", {});
        await waitFor(() => log.includes(`count:${a}:1`), 1000, "a pub/sub wake-up");
      });
    });

    describe("message retries", () => {
      it("retries a failing message with backoff and completes it when a later attempt succeeds", async () => {
        const system = await newSystem();
        const a = uniqueId("flaky");
        const attempts: number[] = [];
        const failed: boolean[] = [];
        system.events.on("message.failed", (e) => failed.push(e.deadLettered));
        await system.spawn(
          defineActor<{ job: { payload: Record<string, never> } }>({
            id: a,
            onFailure: "resume",
            retryBackoff: { minMs: 50, jitter: 0 },
            handlers: {
              job: (_p, ctx) => {
                attempts.push(ctx.attempt);
                if (ctx.attempt < 3) throw new Error(`attempt ${ctx.attempt} failed`);
              },
            },
          }),
        );
        const id = await system.ref(a).tell("job", {});
        await waitFor(async () => (await system.messageStatus(id)) === "completed", 5000, "completion");
        expect(attempts).toEqual([1, 2, 3]);
        expect(failed).toEqual([false, false]);
        expect(await backend().client().hget(backend().keys.message(a, id), "attempts")).toBe("3");
      });

      it("dead-letters a message after maxAttempts with the error and the attempt count", async () => {
        const system = await newSystem();
        const a = uniqueId("doomed");
        const log: string[] = [];
        await system.spawn(
          supervisor({
            id: "s",
            maxRestarts: 10,
            ...fast,
            children: [
              defineActor<Proto>({
                id: a,
                maxAttempts: 3,
                retryBackoff: { minMs: 20, jitter: 0 },
                setup: () => {
                  log.push("start");
                },
                handlers: {
                  crash: (p) => {
                    throw new TypeError(p.why);
                  },
                  count: () => {},
                },
              }),
            ],
          }),
        );
        const id = await system.ref<Proto>(a).tell("crash", { why: "always" });
        await waitFor(async () => (await system.messageStatus(id)) === "failed", 5000, "failure");
        const [entry] = await backend().client().zrange(backend().keys.dead(a), 0, -1);
        expect(JSON.parse(entry as string)).toMatchObject({
          id,
          reason: "handler-error",
          error: "TypeError: always",
          attempts: 3,
        });
        // Each failed attempt restarted the actor (the default directive).
        await waitFor(() => log.length === 4, 3000, "restarts");
      });

      it("fails a handler that outlives handlerTimeoutMs and aborts its signal", async () => {
        const system = await newSystem();
        const a = uniqueId("hung");
        const aborted: string[] = [];
        await system.spawn(
          defineActor<{ hang: { payload: object } }>({
            id: a,
            maxAttempts: 1,
            onFailure: "resume",
            handlerTimeoutMs: 100,
            handlers: {
              hang: (_p, ctx) =>
                new Promise<void>((_, reject) => {
                  ctx.signal.addEventListener("abort", () => {
                    aborted.push(String(ctx.signal.reason));
                    reject(ctx.signal.reason);
                  });
                }),
            },
          }),
        );
        const id = await system.ref(a).tell("hang", {});
        await waitFor(async () => (await system.messageStatus(id)) === "failed", 3000, "failure");
        expect(aborted).toHaveLength(1);
        expect(aborted[0]).toMatch(/ran longer than 100 ms/);
        const [entry] = await backend().client().zrange(backend().keys.dead(a), 0, -1);
        expect(JSON.parse(entry as string)).toMatchObject({
          reason: "handler-error",
          error: expect.stringMatching(/^HandlerTimeoutError/),
        });
      });
    });

    describe("crash during start", () => {
      it("restarts an actor whose first queued message crashes it", async () => {
        const system = await newSystem();
        const a = uniqueId("poisoned");
        const log: string[] = [];
        // Queued before the actor exists: its very first claim crashes it.
        await system.ref<Proto>(a).tell("crash", { why: "at once" });
        await system.spawn(supervisor({ id: "s", ...fast, children: [probe(a, log)] }));
        await waitFor(() => starts(log, a) === 2, 3000, "a restart");
      });
    });

    describe("restarts racing other events", () => {
      it("keeps an actor stopped when it is stopped during its restart backoff", async () => {
        const system = await newSystem();
        const log: string[] = [];
        const a = uniqueId("a");
        await system.spawn(
          supervisor({ id: "s", backoff: { minMs: 400, jitter: 0 }, children: [probe(a, log)] }),
        );
        const restarting = new Promise<void>((resolve) =>
          system.events.once("actor.restarted", () => resolve()),
        );
        await system.ref<Proto>(a).tell("crash", { why: "boom" });
        await restarting;
        await system.stop(a);
        await new Promise((r) => setTimeout(r, 700));
        expect(starts(log, a)).toBe(1);
        expect(system.actorIds()).not.toContain(a);
        expect((await system.status(a))?.status).toBe("offline");
      });

      it("counts one restart when one_for_all children crash together", async () => {
        const system = await newSystem();
        const log: string[] = [];
        const [a, b] = [uniqueId("a"), uniqueId("b")];
        const failures: string[] = [];
        system.events.on("supervisor.failed", (e) => failures.push(e.supervisor));
        await system.spawn(
          supervisor({
            id: "pair",
            strategy: "one_for_all",
            maxRestarts: 1,
            backoff: { minMs: 100, jitter: 0 },
            children: [probe(a, log), probe(b, log)],
          }),
        );
        await Promise.all([crash(system, a), crash(system, b)]);
        await waitFor(() => starts(log, a) === 2 && starts(log, b) === 2, 3000, "one restart of both");
        await new Promise((r) => setTimeout(r, 300));
        expect(failures).toEqual([]);
        expect([starts(log, a), starts(log, b)]).toEqual([2, 2]);
      });
    });
  },
  MASTERS_ONLY,
);
