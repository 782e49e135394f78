/**
 * Persisted actor state (`defineActor({ persist })`, src/state.ts): saved in the same atomic
 * step that completes each message, handed to `setup` as `ctx.saved` after a restart, a new
 * system, another process's takeover; versioned, size-limited, superjson-encoded. And the
 * issue's test: a counter in a child process, 10,000 increments, three SIGKILLs, a saved count of
 * exactly 10,000 while some handlers ran twice.
 */
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import superjson from "superjson";
import { expect, it } from "vitest";
import { newMessageId } from "../src/envelope.js";
import {
  type ActorSystem,
  defineActor,
  InvalidOptionError,
  Priority,
  StateLoadError,
  StateTooLargeError,
} from "../src/index.js";
import { type ClaimedMessage, type FinishRecord, Mailbox, mailboxConfig } from "../src/mailbox.js";
import { backendEnv, describeBackends, MASTERS_ONLY, useBackendSystems } from "./harness/backends.js";
import { uniqueId } from "./harness/redis.js";
import { type ChildWorker, captureLogger, startWorker, waitFor } from "./harness/system.js";

type Counter = {
  inc: { payload: { by?: number } };
  boom: { payload: Record<string, never> };
  get: { payload: Record<string, never>; reply: { count: number } };
};

/** A counter actor; `boom` changes the state and then throws. */
function counter(id: string, options: { onFailure?: "restart" | "resume"; seen?: unknown[] } = {}) {
  return defineActor<Counter, { count: number }>({
    id,
    persist: true,
    maxAttempts: 1,
    onFailure: options.onFailure ?? "restart",
    setup: (ctx) => {
      options.seen?.push(structuredClone(ctx.saved));
      return ctx.saved ?? { count: 0 };
    },
    handlers: {
      inc: (p, ctx) => {
        ctx.state.count += p.by ?? 1;
      },
      boom: (_p, ctx) => {
        ctx.state.count += 1000;
        throw new Error("boom");
      },
      get: (_p, ctx) => ({ count: ctx.state.count }),
    },
  });
}

describeBackends(
  "persisted state",
  (backend) => {
    const newSystem = useBackendSystems(backend);

    /** The saved state of `actor`: its hash's fields, the data decoded. */
    async function saved(
      actor: string,
    ): Promise<{ v: number; seq: number; msg: string; state: unknown } | null> {
      const hash = await backend().client().hgetall(backend().keys.state(actor));
      if (!hash.data) return null;
      return {
        v: Number(hash.v),
        seq: Number(hash.seq),
        msg: String(hash.msg),
        state: superjson.parse(hash.data),
      };
    }

    async function settled(system: ActorSystem, actor: string, count: number): Promise<void> {
      await waitFor(async () => (await saved(actor))?.seq === count, 10_000, `${count} saves of ${actor}`);
      void system;
    }

    it("gives setup ctx.saved: undefined first, then the saved state after a supervisor restart", async () => {
      const system = await newSystem();
      const id = uniqueId("ctr");
      const seen: unknown[] = [];
      const ref = await system.spawn(counter(id, { seen }));
      expect(seen).toEqual([undefined]);
      for (let i = 0; i < 5; i++) await ref.tell("inc", { by: 2 });
      expect(await ref.ask("get", {})).toEqual({ count: 10 });
      // A failed handler changed ctx.state and threw: the actor restarts from the saved state.
      await ref.tell("boom", {});
      await waitFor(() => seen.length === 2, 10_000, "the restart");
      expect(seen[1]).toEqual({ count: 10 });
      expect(await ref.ask("get", {})).toEqual({ count: 10 });
      const s = await saved(id);
      // Seven completed messages (five inc, two get), one save each; the failure saved nothing.
      expect(s).toMatchObject({ v: 1, seq: 7, state: { count: 10 } });
    });

    it("rolls a failed message's changes back under onFailure resume", async () => {
      const system = await newSystem();
      const id = uniqueId("ctr");
      const ref = await system.spawn(counter(id, { onFailure: "resume" }));
      await ref.tell("inc", {});
      await ref.tell("boom", {});
      await ref.tell("inc", {});
      expect(await ref.ask("get", {})).toEqual({ count: 2 });
      expect((await saved(id))?.state).toEqual({ count: 2 });
    });

    it("survives a new system and another system's takeover", async () => {
      const id = uniqueId("ctr");
      const a = await newSystem();
      const ref = await a.spawn(counter(id));
      for (let i = 0; i < 3; i++) await ref.tell("inc", {});
      expect(await ref.ask("get", {})).toEqual({ count: 3 });
      await a.shutdown();

      // A new system (same process): setup gets the saved state.
      const seenB: unknown[] = [];
      const b = await newSystem();
      const refB = await b.spawn(counter(id, { seen: seenB }));
      expect(seenB).toEqual([{ count: 3 }]);
      await refB.tell("inc", { by: 4 });
      expect(await refB.ask("get", {})).toEqual({ count: 7 });

      // Another system spawns it too and stands by (single activation); when b stops it, c takes over.
      const seenC: unknown[] = [];
      const c = await newSystem({ heartbeatMs: 200 });
      await c.spawn(counter(id, { seen: seenC }));
      expect(seenC).toEqual([]);
      await b.stop(id);
      await waitFor(() => seenC.length === 1, 10_000, "the takeover");
      expect(seenC[0]).toEqual({ count: 7 });
      expect(await c.ref<Counter>(id).ask("get", {})).toEqual({ count: 7 });
    });

    it("supports assigning ctx.state, and round-trips Date, Map, Set and BigInt", async () => {
      type Rich = { at: Date; seen: Map<string, bigint>; tags: Set<string>; n: number };
      type P = { see: { payload: { key: string } } };
      const id = uniqueId("rich");
      const seen: (Rich | undefined)[] = [];
      const def = defineActor<P, Rich>({
        id,
        persist: true,
        setup: (ctx) => {
          seen.push(ctx.saved);
          return ctx.saved ?? { at: new Date(0), seen: new Map(), tags: new Set(), n: 0 };
        },
        handlers: {
          see: (p, ctx) => {
            const next = new Map(ctx.state.seen);
            next.set(p.key, (next.get(p.key) ?? 0n) + 2n ** 64n);
            // Assigned rather than changed in place: the new value is what is saved.
            ctx.state = {
              at: new Date(1_700_000_000_123),
              seen: next,
              tags: new Set([p.key]),
              n: ctx.state.n + 1,
            };
          },
        },
      });
      const a = await newSystem();
      const ref = await a.spawn(def);
      await ref.tell("see", { key: "x" });
      await ref.tell("see", { key: "x" });
      await settled(a, id, 2);
      await a.shutdown();
      const b = await newSystem();
      await b.spawn(def);
      const restored = seen[1] as Rich;
      expect(restored.at).toBeInstanceOf(Date);
      expect(restored.at.getTime()).toBe(1_700_000_000_123);
      expect(restored.seen).toEqual(new Map([["x", 2n * 2n ** 64n]]));
      expect(restored.tags).toEqual(new Set(["x"]));
      expect(restored.n).toBe(2);
    });

    it("migrates a state saved under another version, and refuses one without migrate", async () => {
      const id = uniqueId("ver");
      type P = { inc: { payload: Record<string, never> } };
      const a = await newSystem();
      const v1 = defineActor<P, { count: number }>({
        id,
        persist: true,
        setup: (ctx) => ctx.saved ?? { count: 0 },
        handlers: {
          inc: (_p, ctx) => {
            ctx.state.count += 1;
          },
        },
      });
      const ref = await a.spawn(v1);
      await ref.tell("inc", {});
      await ref.tell("inc", {});
      await settled(a, id, 2);
      await a.shutdown();

      // Version 2 without migrate: the start fails with a typed error that says to add one.
      const b = await newSystem();
      const v2 = (migrate?: (old: unknown, from: number) => { total: number }) =>
        defineActor<P, { total: number }>({
          id,
          persist: { version: 2, migrate },
          setup: (ctx) => ctx.saved ?? { total: 0 },
          handlers: {
            inc: (_p, ctx) => {
              ctx.state.total += 1;
            },
          },
        });
      const refused = await b.spawn(v2()).catch((err: unknown) => err);
      expect(refused).toBeInstanceOf(StateLoadError);
      expect((refused as StateLoadError).reason).toBe("version");
      expect((refused as Error).message).toMatch(/add persist\.migrate/);
      await b.shutdown();

      const c = await newSystem();
      const calls: [unknown, number][] = [];
      const refC = await c.spawn(
        v2((old, from) => {
          calls.push([old, from]);
          return { total: (old as { count: number }).count * 10 };
        }),
      );
      expect(calls).toEqual([[{ count: 2 }, 1]]);
      await refC.tell("inc", {});
      await waitFor(async () => (await saved(id))?.seq === 3, 10_000, "the save under version 2");
      expect(await saved(id)).toMatchObject({ v: 2, state: { total: 21 } });
    });

    it("refuses a state over maxBytes: the message fails, the saved state stays", async () => {
      type P = { add: { payload: { text: string } } };
      const id = uniqueId("big");
      const system = await newSystem();
      const failures: { error: string; deadLettered: boolean }[] = [];
      system.events.on("message.failed", (e) => {
        if (e.actor === id) failures.push(e);
      });
      const ref = await system.spawn(
        defineActor<P, { texts: string[] }>({
          id,
          persist: { maxBytes: 200 },
          maxAttempts: 2,
          retryBackoff: { minMs: 10, maxMs: 10, jitter: 0 },
          onFailure: "resume",
          setup: (ctx) => ctx.saved ?? { texts: [] },
          handlers: { add: (p, ctx) => void ctx.state.texts.push(p.text) },
        }),
      );
      await ref.tell("add", { text: "small" });
      await ref.tell("add", { text: "x".repeat(300) });
      await ref.tell("add", { text: "after" });
      await waitFor(async () => (await saved(id))?.seq === 2, 10_000, "two saves");
      await waitFor(() => failures.some((f) => f.deadLettered), 10_000, "the dead letter");
      // Retried, then dead-lettered (how many runs that takes is the retry logic's business).
      expect(failures.at(-1)?.deadLettered).toBe(true);
      expect(failures.slice(0, -1).every((f) => !f.deadLettered)).toBe(true);
      for (const f of failures) {
        expect(f.error).toMatch(/^StateTooLargeError: state of actor .* over its 200-byte limit/);
      }
      // The refused state was rolled back: the next message saved on top of the last good one.
      expect((await saved(id))?.state).toEqual({ texts: ["small", "after"] });
      expect(await backend().client().zcard(backend().keys.dead(id))).toBe(1);
      expect(new StateTooLargeError("a", 2, 1)).toBeInstanceOf(Error);
    });

    it("restarts from the saved state when another writer saved since (a stale state is not saved)", async () => {
      const id = uniqueId("ctr");
      const system = await newSystem();
      const seen: unknown[] = [];
      const ref = await system.spawn(counter(id, { seen }));
      await ref.tell("inc", {});
      expect(await ref.ask("get", {})).toEqual({ count: 1 });
      // Someone else saves a newer state (as a previous owner's late write would).
      await backend()
        .client()
        .hset(
          backend().keys.state(id),
          "v",
          "1",
          "data",
          JSON.stringify({ json: { count: 100 } }),
          "seq",
          "50",
        );
      await ref.tell("inc", {});
      // The increment computed from count 1 is refused; the actor restarts from count 100 and
      // the message, handed back, runs again on top of it.
      await waitFor(() => seen.length === 2, 10_000, "the restart");
      expect(seen[1]).toEqual({ count: 100 });
      await waitFor(async () => (await saved(id))?.seq === 51, 10_000, "the save on top of it").catch(
        async (err: Error) => {
          const c = backend().client();
          const k = backend().keys;
          const dbg = [
            await c.zrange(k.inbox(id), 0, -1, "WITHSCORES"),
            await c.zrange(k.processing(id), 0, -1, "WITHSCORES"),
            await c.zrange(k.dead(id), 0, -1),
          ];
          throw new Error(
            `${err.message}: ${JSON.stringify(await saved(id))} ${JSON.stringify(seen)} ${JSON.stringify(dbg)}`,
          );
        },
      );
      expect((await saved(id))?.state).toEqual({ count: 101 });
    });

    it("stops an actor whose state cannot be loaded at a restart: no restart loop, the rest runs on", async () => {
      const { logger, lines } = captureLogger();
      const system = await newSystem({ logger });
      const id = uniqueId("ctr");
      const events: string[] = [];
      system.events.on("actor.restarted", (e) => {
        if (e.actor === id) events.push("restarted");
      });
      system.events.on("actor.stopped", (e) => {
        if (e.actor === id) events.push(`stopped:${e.reason}`);
      });
      let failed = false;
      system.events.on("supervisor.failed", () => {
        failed = true;
      });
      const ref = await system.spawn(counter(id));
      const bystander = await system.spawn(
        defineActor<{ ping: { payload: Record<string, never>; reply: string } }>({
          id: uniqueId("by"),
          handlers: { ping: () => "pong" },
        }),
      );
      await ref.tell("inc", {});
      expect(await ref.ask("get", {})).toEqual({ count: 1 });
      // The saved state is spoiled, then a failure restarts the actor: its restart cannot load it.
      await backend().client().hset(backend().keys.state(id), "data", "garbage");
      await ref.tell("boom", {});
      await waitFor(() => events.includes("stopped:state-load"), 10_000, "the actor given up");
      // Given up at once: one restart (the crash's), not a loop until the root supervisor fails.
      await new Promise((r) => setTimeout(r, 1500));
      expect(events).toEqual(["stopped:crash", "restarted", "stopped:state-load"]);
      expect(failed).toBe(false);
      expect(await bystander.ask("ping", {})).toBe("pong");
      const line = lines.find((l) => l.actor === id && String(l.msg).includes("cannot load"));
      expect(line).toMatchObject({ level: 50, reason: "decode" });
      // Taken out of its supervisor: spawning it again is a clean StateLoadError, and once the
      // state is repaired it runs again.
      expect(await system.spawn(counter(id)).catch((e: unknown) => e)).toBeInstanceOf(StateLoadError);
      await backend()
        .client()
        .hset(backend().keys.state(id), "data", JSON.stringify({ json: { count: 7 } }));
      const again = await system.spawn(counter(id));
      expect(await again.ask("get", {})).toEqual({ count: 7 });
    });

    it("a process taking over a state it cannot load gives it up, so one that can takes over", async () => {
      type P = { inc: { payload: Record<string, never>; reply: number } };
      const id = uniqueId("roll");
      const v1 = defineActor<P, { n: number }>({
        id,
        persist: true,
        setup: (ctx) => ctx.saved ?? { n: 0 },
        handlers: { inc: (_p, ctx) => ++ctx.state.n },
      });
      const v2 = defineActor<P, { count: number }>({
        id,
        persist: { version: 2, migrate: (old) => ({ count: (old as { n: number }).n }) },
        setup: (ctx) => ctx.saved ?? { count: 0 },
        handlers: { inc: (_p, ctx) => ++ctx.state.count },
      });
      const fresh = await newSystem({ heartbeatMs: 200 });
      expect(await (await fresh.spawn(v2)).ask("inc", {})).toBe(1);
      // An old process (v1 code) stands by, and takes over when the new one stops the actor.
      const old = await newSystem({ heartbeatMs: 200 });
      const oldEvents: string[] = [];
      old.events.on("actor.stopped", (e) => {
        if (e.actor === id) oldEvents.push(`stopped:${e.reason}`);
      });
      old.events.on("actor.activated", (e) => {
        if (e.actor === id) oldEvents.push("activated");
      });
      await old.spawn(v1);
      const other = await old.spawn(
        defineActor<{ ping: { payload: Record<string, never>; reply: string } }>({
          id: uniqueId("by"),
          handlers: { ping: () => "pong" },
        }),
      );
      await fresh.stop(id);
      await waitFor(() => oldEvents.includes("stopped:state-load"), 10_000, "the old process giving it up");
      expect(oldEvents).toEqual(["activated", "stopped:state-load"]);
      // Its activation was released: a process that can load the state owns the actor now.
      const later = await newSystem({ heartbeatMs: 200 });
      const ref = await later.spawn(v2);
      expect(await ref.ask("inc", {}, { timeoutMs: 5000 })).toBe(2);
      // The old process did not try again, and its other actor runs on.
      await new Promise((r) => setTimeout(r, 800));
      expect(oldEvents).toEqual(["activated", "stopped:state-load"]);
      expect(await other.ask("ping", {})).toBe("pong");
    });

    it("a handler still running after its timeout (onFailure resume) changes neither ctx.state nor the saved state", async () => {
      type P = {
        slow: { payload: Record<string, never> };
        inc: { payload: Record<string, never>; reply: number };
      };
      const id = uniqueId("zmb");
      const system = await newSystem();
      let zombieDone = false;
      const ref = await system.spawn(
        defineActor<P, { n: number; tags: string[] }>({
          id,
          persist: true,
          handlerTimeoutMs: 100,
          maxAttempts: 1,
          onFailure: "resume",
          setup: (ctx) => ctx.saved ?? { n: 0, tags: [] },
          handlers: {
            slow: async (_p, ctx) => {
              const kept = ctx.state;
              ctx.state.tags.push("before-timeout");
              await new Promise((r) => setTimeout(r, 400));
              // After its timeout: through the reference it kept, through ctx.state, by assignment.
              kept.n += 1000;
              kept.tags.push("kept");
              ctx.state.n += 100;
              ctx.state = { n: 999, tags: ["assigned"] };
              zombieDone = true;
            },
            inc: (_p, ctx) => ++ctx.state.n,
          },
        }),
      );
      await ref.tell("slow", {});
      expect(await ref.ask("inc", {})).toBe(1);
      await waitFor(() => zombieDone, 5000, "the zombie run to end");
      expect(await ref.ask("inc", {})).toBe(2);
      expect(await ref.ask("inc", {})).toBe(3);
      await waitFor(async () => (await saved(id))?.seq === 3, 5000, "three saves");
      expect((await saved(id))?.state).toEqual({ n: 3, tags: [] });
    });

    it("a failed message rolls back to the state a broadcast left, which the next message saves", async () => {
      type P = {
        config: { payload: { cfg: string } };
        broken: { payload: { cfg: string } };
        boom: { payload: Record<string, never> };
        get: { payload: Record<string, never>; reply: { cfg: string; n: number } };
      };
      const id = uniqueId("bc");
      const system = await newSystem();
      const applied: string[] = [];
      const ref = await system.spawn(
        defineActor<P, { cfg: string; n: number }>({
          id,
          persist: true,
          onFailure: "resume",
          maxAttempts: 1,
          broadcasts: ["config", "broken"],
          setup: (ctx) => ctx.saved ?? { cfg: "old", n: 0 },
          handlers: {
            config: (p, ctx) => {
              ctx.state.cfg = p.cfg;
              applied.push(p.cfg);
            },
            broken: (p, ctx) => {
              ctx.state.cfg = p.cfg;
              throw new Error("broken broadcast");
            },
            boom: (_p, ctx) => {
              ctx.state.n = 1000;
              throw new Error("boom");
            },
            get: (_p, ctx) => ({ ...ctx.state }),
          },
        }),
      );
      // The broadcast changes the state and no message completes after it before one fails.
      await waitFor(
        async () => {
          await system.broadcast("config", { cfg: "new" });
          return applied.includes("new");
        },
        5000,
        "the broadcast",
      );
      await ref.tell("boom", {});
      expect(await ref.ask("get", {})).toEqual({ cfg: "new", n: 0 });
      // Saved with the next completed message (the get).
      await waitFor(
        async () => ((await saved(id))?.state as { cfg?: string } | undefined)?.cfg === "new",
        5000,
        "the save",
      );
      expect((await saved(id))?.state).toEqual({ cfg: "new", n: 0 });
      // A broadcast handler that throws: its changes are rolled back too.
      await system.broadcast("broken", { cfg: "half" });
      await new Promise((r) => setTimeout(r, 300));
      expect(await ref.ask("get", {})).toEqual({ cfg: "new", n: 0 });
    });

    it("sends no reply from a run whose state is refused (on a cluster too, where the reply goes first)", async () => {
      type P = { inc: { payload: Record<string, never>; reply: number } };
      const id = uniqueId("rep");
      const system = await newSystem();
      const runs: number[] = [];
      const ref = await system.spawn(
        defineActor<P, { n: number }>({
          id,
          persist: true,
          setup: (ctx) => ctx.saved ?? { n: 0 },
          handlers: {
            inc: (_p, ctx) => {
              runs.push(++ctx.state.n);
              return ctx.state.n;
            },
          },
        }),
      );
      expect(await ref.ask("inc", {})).toBe(1);
      // Another writer saves a newer state: the next run, computed from n = 1, is refused, and
      // its reply (2) must not reach the asker; the request runs again on top of n = 50.
      await backend()
        .client()
        .hset(backend().keys.state(id), "v", "1", "data", JSON.stringify({ json: { n: 50 } }), "seq", "99");
      expect(await ref.ask("inc", {}, { timeoutMs: 10_000 })).toBe(51);
      expect(runs).toEqual([1, 2, 51]);
      await waitFor(async () => (await saved(id))?.seq === 100, 5000, "the save on top of it");
      expect((await saved(id))?.state).toEqual({ n: 51 });
    });

    it("persists each instance of an actor family under its own id", async () => {
      type P = { inc: { payload: Record<string, never> } };
      const family = uniqueId("fam");
      const def = defineActor<P, { count: number }>({
        family,
        persist: true,
        idleMs: 100,
        setup: (ctx) => ctx.saved ?? { count: 0 },
        handlers: {
          inc: (_p, ctx) => {
            ctx.state.count += 1;
          },
        },
      });
      const system = await newSystem();
      const pool = await system.spawn(def);
      await pool.ref("a").tell("inc", {});
      await pool.ref("a").tell("inc", {});
      await pool.ref("b").tell("inc", {});
      await waitFor(async () => (await saved(`${family}:a`))?.seq === 2, 10_000, "instance a");
      await waitFor(async () => (await saved(`${family}:b`))?.seq === 1, 10_000, "instance b");
      // Passivated after idleMs, activated again by the next message: it goes on from its saved count.
      await new Promise((r) => setTimeout(r, 400));
      await pool.ref("a").tell("inc", {});
      await waitFor(async () => (await saved(`${family}:a`))?.seq === 3, 10_000, "instance a again");
      expect((await saved(`${family}:a`))?.state).toEqual({ count: 3 });
      expect((await saved(`${family}:b`))?.state).toEqual({ count: 1 });
    });

    it("counts exactly 10,000 across three SIGKILLs of its process, while some handlers ran twice", async () => {
      const TOTAL = 10_000;
      const startedAt = Date.now();
      const actor = uniqueId("counter");
      const admin = backend().client();
      const keys = backend().keys;
      const runsFile = join(mkdtempSync(join(tmpdir(), "redactor-persist-")), "runs.log");
      const hangAt = [0.2, 0.45, 0.7].map((base) => Math.floor(TOTAL * (base + Math.random() * 0.1)));
      writeFileSync(runsFile, "");
      const env = {
        ...backendEnv(backend()),
        ACTOR_ID: actor,
        HEARTBEAT_MS: "200",
        LEASE_MS: "2000",
        RUNS_FILE: runsFile,
        HANG_AT: hangAt.join(","),
      };
      const start = () => startWorker("counter-worker", { ...env, APP_ID: uniqueId("counter-worker") });

      // Sent up front: the worker drains a backlog, so every kill lands mid-batch.
      const producer = await newSystem();
      const ref = producer.ref<{ inc: { payload: Record<string, never> } }>(actor);
      for (let i = 0; i < TOTAL; i += 500) {
        await Promise.all(Array.from({ length: Math.min(500, TOTAL - i) }, () => ref.tell("inc", {})));
      }
      const count = async () => {
        const data = await admin.hget(keys.state(actor), "data");
        return data === null ? 0 : (superjson.parse(data) as { count: number }).count;
      };
      let worker: ChildWorker = await start();
      const kills: string[] = [];
      // Each kill lands in a handler that has added one in memory (the worker hangs there once),
      // so at least three messages run twice; the batch-mates claimed with it run again too.
      const hangs = () =>
        (existsSync(`${runsFile}.hang`) ? readFileSync(`${runsFile}.hang`, "utf8") : "")
          .split("\n")
          .filter(Boolean).length;
      for (let k = 1; k <= hangAt.length; k++) {
        await waitFor(() => hangs() >= k, 60_000, `the worker's hang number ${k}`);
        const at = await count();
        await worker.kill("SIGKILL");
        kills.push(`at ${at}`);
        worker = await start();
      }
      await waitFor(async () => (await count()) >= TOTAL, 60_000, `a count of ${TOTAL}`);
      await waitFor(
        async () =>
          (await admin.zcard(keys.inbox(actor))) === 0 && (await admin.zcard(keys.processing(actor))) === 0,
        30_000,
        "empty queues",
      );
      const final = await saved(actor);
      const runs = readFileSync(runsFile, "utf8").split("\n").filter(Boolean);
      const distinct = new Set(runs).size;
      const durationMs = Date.now() - startedAt;
      console.log(
        `persisted counter [${backend().name}]: ${TOTAL} increments, ${kills.length} SIGKILLs (${kills.join(", ")}), ` +
          `saved count ${(final?.state as { count: number } | undefined)?.count} after ${final?.seq} saves, ` +
          `${runs.length} handler runs, ${distinct} distinct messages, ${runs.length - distinct} duplicate runs, ` +
          `dead letters ${await admin.zcard(keys.dead(actor))}, ${durationMs} ms`,
      );
      expect(final?.state).toEqual({ count: TOTAL });
      // One save per message: a message that ran twice saved its state once.
      expect(final?.seq).toBe(TOTAL);
      expect(distinct).toBe(TOTAL);
      expect(runs.length - distinct).toBeGreaterThanOrEqual(hangAt.length);
      expect(await admin.zcard(keys.dead(actor))).toBe(0);
      await worker.kill("SIGTERM");
    }, 120_000);

    it("finish.lua saves a state iff its record is written, on top of the seq it names", async () => {
      const client = backend().client();
      const keys = backend().keys;
      const mailbox = new Mailbox(client, keys, mailboxConfig());
      await mailbox.load();
      const app = uniqueId("fin");
      const send = async () => {
        const m = mailbox.encode({
          id: newMessageId(),
          sender: "tester",
          recipient: app,
          message_type: "t",
          payload: {},
          priority: Priority.NORMAL,
          timestamp: Date.now() / 1000,
          reply_to: null,
          timeout: null,
        });
        await mailbox.send([m]);
        const [claimed] = (await mailbox.claim(app, 1, "tok")).claimed;
        if (!claimed) throw new Error("nothing claimed");
        return claimed;
      };
      const record = (m: ClaimedMessage, token: string, base: number, count: number): FinishRecord => ({
        id: m.id,
        member: m.member,
        token,
        event: "COMPLETE",
        attempts: 1,
        state: { base, version: 1, data: JSON.stringify({ json: { count } }) },
      });
      const m1 = await send();
      // Not the lease holder: nothing written, the state included.
      expect((await mailbox.finish(app, [record(m1, "other", 0, 1)])).outcomes).toEqual(["lease-lost"]);
      expect(await saved(app)).toBeNull();
      // Computed from a seq that is not the saved one: nothing written.
      expect((await mailbox.finish(app, [record(m1, "tok", 5, 1)])).outcomes).toEqual(["state-stale"]);
      expect(await saved(app)).toBeNull();
      expect((await mailbox.finish(app, [record(m1, "tok", 0, 1)])).outcomes).toEqual(["written"]);
      expect(await saved(app)).toMatchObject({ seq: 1, msg: m1.id, state: { count: 1 } });
      // The same message finished again (its handler ran twice): refused (the completion cleared
      // its lease), the state unchanged.
      expect((await mailbox.finish(app, [record(m1, "tok", 1, 2)])).outcomes).toEqual(["lease-lost"]);
      expect(await saved(app)).toMatchObject({ seq: 1, state: { count: 1 } });
      // Records of one call chain: the second names the seq the first saves; a third naming an
      // older one is stale, and with it nothing of its own is written.
      const m2 = await send();
      const m3 = await send();
      const m4 = await send();
      const { outcomes } = await mailbox.finish(app, [
        record(m2, "tok", 1, 2),
        record(m3, "tok", 2, 3),
        record(m4, "tok", 2, 99),
      ]);
      expect(outcomes).toEqual(["written", "written", "state-stale"]);
      expect(await saved(app)).toMatchObject({ seq: 3, msg: m3.id, state: { count: 3 } });
      expect(await client.hget(keys.message(app, m4.id), "status")).toBe("processing");
      // A state on a record that does not complete is refused before anything is written.
      await expect(
        mailbox.finish(app, [{ ...record(m4, "tok", 3, 4), event: "RETRY", retryAtMs: Date.now() }]),
      ).rejects.toThrow(/carries a state but does not complete/);
      expect(await client.hget(keys.message(app, m4.id), "status")).toBe("processing");
    });

    it("checks the persist option up front", () => {
      const handlers = { inc: () => {} };
      const bad: unknown[] = [
        "yes",
        1,
        [],
        { version: 0 },
        { version: 1.5 },
        { migrate: "no" },
        { maxBytes: 0 },
        { maxBytes: 2 ** 40 },
      ];
      for (const persist of bad) {
        expect(() => defineActor({ id: "p", persist: persist as never, handlers })).toThrow(
          InvalidOptionError,
        );
      }
      expect(() => defineActor({ id: "p", persist: true, activation: "shared", handlers })).toThrow(
        /needs activation "single"/,
      );
      expect(() => defineActor({ id: "p", persist: { version: 3, maxBytes: 10 }, handlers })).not.toThrow();
    });
  },
  MASTERS_ONLY,
);
