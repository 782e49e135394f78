/**
 * Dead-letter retry and purge (src/dead-letters.ts, src/lua/retry-dead.lua), racing each other
 * and themselves: a dead letter ends either purged or retried, never both; a retried message runs
 * once however many retries of it race; and the outcome lists say exactly what happened.
 */
import { expect, it } from "vitest";
import { purgeDeadLetters, retryDeadLetters } from "../src/dead-letters.js";
import { type ActorSystem, defineActor } from "../src/index.js";
import { systemStore } from "../src/metrics.js";
import { ORDERING_CANONICAL, ORDERING_FIELD } from "../src/presence.js";
import { canonicalScore } from "../src/priority.js";
import { describeBackends, MASTERS_ONLY, useBackendSystems } from "./harness/backends.js";
import { uniqueId } from "./harness/redis.js";
import { waitFor } from "./harness/system.js";

type Job = { job: { payload: { i: number } } };

describeBackends(
  "dead letters",
  (backend) => {
    const newSystem = useBackendSystems(backend);

    /**
     * `n` dead letters of a new actor (handler-error, one attempt each), whose handler fails
     * while `failing()` says so and counts its runs per `i`. With `stop`, the actor is stopped
     * once they are dead: what is retried then stays in the inbox.
     */
    async function deadLetters(n: number, options: { stop: boolean; failing?: () => boolean }) {
      const system = await newSystem();
      const app = uniqueId("dl");
      const runs = new Map<number, number>();
      await system.spawn(
        defineActor<Job>({
          id: app,
          maxAttempts: 1,
          onFailure: "resume",
          handlers: {
            job: (p) => {
              runs.set(p.i, (runs.get(p.i) ?? 0) + 1);
              if (options.failing?.() ?? true) throw new Error("no");
            },
          },
        }),
      );
      const ref = system.ref<Job>(app);
      const ids = await Promise.all(Array.from({ length: n }, (_, i) => ref.tell("job", { i })));
      const admin = backend().client();
      const keys = backend().keys;
      await waitFor(async () => (await admin.zcard(keys.dead(app))) === n, 30_000, `${n} dead letters`);
      if (options.stop) await system.stop(app);
      runs.clear();
      const store = systemStore(system as ActorSystem);
      if (!store) throw new Error("systemStore: not a redactor system");
      return { app, ids, runs, admin, keys, redis: store.redis };
    }

    /** The ids of the members of a sorted set. */
    async function idsIn(admin: ReturnType<ReturnType<typeof backend>["client"]>, key: string) {
      return (await admin.zrange(key, 0, -1)).map((m) => String(JSON.parse(m).id));
    }

    it("retry racing purge all: each of 300 letters is purged or retried, never both, as reported", async () => {
      const { app, ids, admin, keys, redis } = await deadLetters(300, { stop: true });
      const retrying = retryDeadLetters(redis, keys, app, { limit: 1000 });
      // Purge once the retry is under way, so that the two really overlap.
      await waitFor(async () => (await admin.zcard(keys.inbox(app))) > 0, 10_000, "the first retry");
      const purge = await purgeDeadLetters(redis, keys, app, { all: true });
      const retry = await retrying;

      const retried = retry.retried.map((r) => r.id);
      expect(retried.length).toBeGreaterThan(0);
      expect(purge.purged).toBeGreaterThan(0);
      expect(retried.length + purge.purged).toBe(300);
      // Exactly the letters reported retried are in the inbox, pending; the others were skipped as gone.
      expect(new Set(await idsIn(admin, keys.inbox(app)))).toEqual(new Set(retried));
      expect(retry.skipped).toHaveLength(purge.purged);
      expect(new Set([...retried, ...retry.skipped.map((s) => s.id)])).toEqual(new Set(ids));
      expect(retry.skipped.every((s) => s.reason.includes("already gone"))).toBe(true);
      expect(await admin.zcard(keys.dead(app))).toBe(0);
      expect(retry.remaining).toBe(0);
      const retriedSet = new Set(retried);
      for (const id of ids) {
        const status = await admin.hget(keys.message(app, id), "status");
        expect(status, id).toBe(retriedSet.has(id) ? "pending" : "failed");
      }
    });

    it("retry and purge by ids, concurrently: each letter goes one way, and both calls say which", async () => {
      const { app, ids, admin, keys, redis } = await deadLetters(300, { stop: true });
      const [retry, purge] = await Promise.all([
        retryDeadLetters(redis, keys, app, { ids }),
        purgeDeadLetters(redis, keys, app, { ids: [...ids].reverse() }),
      ]);
      const retried = retry.retried.map((r) => r.id);
      expect(retried.length + purge.purged).toBe(300);
      expect(new Set(purge.gone)).toEqual(new Set(retried));
      expect(new Set(retry.skipped.map((s) => s.id))).toEqual(
        new Set(ids.filter((id) => !retried.includes(id))),
      );
      expect(new Set(await idsIn(admin, keys.inbox(app)))).toEqual(new Set(retried));
      expect(await admin.zcard(keys.dead(app))).toBe(0);
      expect(retry.notFound).toEqual([]);
      expect(purge.notFound).toEqual([]);
    });

    it("retries of the same letters racing, while the actor runs them: each runs once", async () => {
      let failing = true;
      const n = 300;
      const { app, runs, keys, redis, admin } = await deadLetters(n, { stop: false, failing: () => failing });
      failing = false;
      // The letters a retry of all (oldest first) reaches last.
      const newest = (await admin.zrange(keys.dead(app), -20, -1)).map((m) => String(JSON.parse(m).id));
      const all = [
        retryDeadLetters(redis, keys, app, { limit: 1000 }),
        retryDeadLetters(redis, keys, app, { limit: 1000 }),
      ];
      // Once those two have read the dead set, retry the newest again, so that they run (and
      // complete) before the two retries of all, holding their entries since, come to them.
      await waitFor(async () => runs.size > 0 || (await admin.zcard(keys.inbox(app))) > 0, 10_000, "retries");
      const first = await retryDeadLetters(redis, keys, app, { ids: newest });
      const outcomes = [first, ...(await Promise.all(all))];
      const retried = outcomes.flatMap((o) => o.retried.map((r) => r.id));
      expect(retried).toHaveLength(n);
      expect(new Set(retried).size).toBe(n);
      for (const o of outcomes) {
        expect(o.skipped.every((s) => s.reason.includes("already gone"))).toBe(true);
      }
      await waitFor(() => runs.size === n, 20_000, "every retried message run");
      // Time for a second run, if a stale retry had put one back.
      await new Promise((r) => setTimeout(r, 1500));
      expect([...runs.entries()].filter(([, count]) => count !== 1)).toEqual([]);
      expect(await admin.zcard(keys.inbox(app))).toBe(0);
    });

    it("leaves alone a dead letter whose id is live again, and writes nothing", async () => {
      const { app, ids, admin, keys, redis } = await deadLetters(1, { stop: true });
      const id = ids[0] as string;
      const hash = keys.message(app, id);
      await admin.hset(hash, "status", "completed");
      const before = await admin.zrange(keys.dead(app), 0, -1);
      const out = await retryDeadLetters(redis, keys, app, { ids: [id] });
      expect(out.retried).toEqual([]);
      expect(out.skipped).toEqual([{ id, reason: expect.stringContaining("completed again") }]);
      expect(await admin.zrange(keys.dead(app), 0, -1)).toEqual(before);
      expect(await admin.zcard(keys.inbox(app))).toBe(0);
      expect(await admin.hget(hash, "status")).toBe("completed");
    });

    it("scores a retried letter as a send would: canonical in a redactor inbox, the peers' score otherwise, and wakes the app", async () => {
      const { app, ids, admin, keys, redis } = await deadLetters(2, { stop: true });
      const [a, b] = ids as [string, string];
      const listener = backend().client();
      const heard: string[] = [];
      listener.on("message", (_channel: string, text: string) => heard.push(text));
      await listener.subscribe(keys.channel(app));
      try {
        const memberOf = async (id: string) =>
          (await admin.zrange(keys.dead(app), 0, -1))
            .map((e) => JSON.parse(e) as { id: string; message: string })
            .find((e) => e.id === id)?.message as string;
        const sentAt = async (id: string) => JSON.parse(await memberOf(id)).timestamp as number;

        await admin.hset(keys.status(app), ORDERING_FIELD, ORDERING_CANONICAL);
        await admin.hdel(keys.status(app), "wake");
        const tsA = await sentAt(a);
        const memberA = await memberOf(a);
        expect((await retryDeadLetters(redis, keys, app, { ids: [a] })).retried).toHaveLength(1);
        expect(Number(await admin.zscore(keys.inbox(app), memberA))).toBe(
          canonicalScore(2, Math.round(tsA * 1e6)),
        );

        // No longer a redactor inbox (a peer serves it): the peers' priority * 1000 + timestamp.
        await admin.hdel(keys.status(app), ORDERING_FIELD);
        const tsB = await sentAt(b);
        const memberB = await memberOf(b);
        expect((await retryDeadLetters(redis, keys, app, { ids: [b] })).retried).toHaveLength(1);
        expect(Number(await admin.zscore(keys.inbox(app), memberB))).toBeCloseTo(2000 + tsB, 3);

        await waitFor(() => heard.length === 2, 5000, "two wake-ups");
        expect(heard).toEqual([`new_message:${a}`, `new_message:${b}`]);
      } finally {
        listener.disconnect();
      }
    });
  },
  MASTERS_ONLY,
);
