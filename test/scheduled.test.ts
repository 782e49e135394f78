/**
 * Scheduled messages (`tell`/`ask` with `delayMs` or `at`, `system.cancel`), on one server and on
 * a cluster: invisible in the plain inbox until due by Redis' TIME, then delivered byte for byte
 * with the score a send would give it; cancel, duplicates, ask, validation; a sender SIGKILLed
 * after scheduling; a Redis restart with AOF; a seeded property over random schedules.
 */
import { fileURLToPath } from "node:url";
import fc from "fast-check";
import type { Cluster, Redis } from "ioredis";
import { describe, expect, it } from "vitest";
import {
  type ActorSystem,
  AskFailedError,
  AskTimeoutError,
  defineActor,
  InvalidOptionError,
  Priority,
} from "../src/index.js";
import type { Keyspace } from "../src/keyspace.js";
import { wireScore } from "../src/priority.js";
import { backendEnv, describeBackends, MASTERS_ONLY, useBackendSystems } from "./harness/backends.js";
import { FIELDS } from "./harness/member-arbitraries.js";
import { uniqueId, useRedis } from "./harness/redis.js";
import { runProcess, startWorker, useSystems, waitFor } from "./harness/system.js";

/** The CLI's command line before its own arguments. */
const CLI = ["--import", "tsx", fileURLToPath(new URL("../src/cli/main.ts", import.meta.url))];

type Client = Redis | Cluster;

/**
 * Reads Redis' TIME (ms) and the members of `inbox` in one atomic step on the inbox's node; with
 * `take`, the members are removed too (a consumer that sees each delivery once).
 */
async function timeAndInbox(
  client: Client,
  inbox: string,
  take = false,
): Promise<{ nowMs: number; members: string[] }> {
  const [time, members] = (await client.eval(
    `local t = redis.call('TIME')
     local m = redis.call('ZRANGE', KEYS[1], 0, -1)
     if ARGV[1] == '1' then redis.call('DEL', KEYS[1]) end
     return { t, m }`,
    1,
    inbox,
    take ? "1" : "0",
  )) as [[string, string], string[]];
  return { nowMs: Number(time[0]) * 1000 + Math.floor(Number(time[1]) / 1000), members };
}

/** The due time (ms) a member carries: its timestamp, rounded up to whole ms as the scheduler does. */
function dueOf(member: string): number {
  return Math.ceil(((JSON.parse(member) as { timestamp: number }).timestamp * 1e6) / 1000);
}

function idOf(member: string): string {
  return (JSON.parse(member) as { id: string }).id;
}

/** Polls the inbox until `count` members were seen, checking that none was visible before its due time. */
async function watchInbox(
  client: Client,
  inbox: string,
  count: number,
  timeoutMs: number,
  take = false,
  scheduled: (id: string) => boolean = () => true,
): Promise<{ seen: Map<string, { member: string; firstSeenMs: number }>; all: string[] }> {
  const seen = new Map<string, { member: string; firstSeenMs: number }>();
  const all: string[] = [];
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const { nowMs, members } = await timeAndInbox(client, inbox, take);
    for (const member of members) {
      // Never visible before its due time, by Redis' clock.
      if (scheduled(idOf(member))) expect(nowMs).toBeGreaterThanOrEqual(dueOf(member));
      if (take) all.push(member);
      if (!seen.has(idOf(member))) seen.set(idOf(member), { member, firstSeenMs: nowMs });
    }
    if (seen.size >= count) break;
    await new Promise((r) => setTimeout(r, 5));
  }
  return { seen, all };
}

describeBackends(
  "scheduled messages",
  (backend) => {
    const newSystem = useBackendSystems(backend);
    const keys = (): Keyspace => backend().keys;

    it("is invisible in the plain inbox until due by Redis' TIME, then delivered as a send would", async () => {
      const client = backend().client();
      const system = await newSystem();
      const peer = uniqueId("peer");
      const id = await system
        .ref(peer)
        .tell("land", { now: true }, { delayMs: 700, priority: Priority.HIGH });
      // Scheduled: in the app's scheduled set and its hash, not in the inbox.
      expect(await client.zcard(keys().inbox(peer))).toBe(0);
      expect(await client.zcard(keys().scheduled(peer))).toBe(1);
      expect(await system.messageStatus(id, peer)).toBe("scheduled");
      const hash = await client.hgetall(keys().message(peer, id));
      expect(hash).toMatchObject({
        status: "scheduled",
        sender: system.appId,
        recipient: peer,
        type: "land",
      });
      expect(Number(hash.due)).toBeGreaterThan(Date.now() - 1000);
      // No TTL while it waits: it is still there to deliver after any outage.
      expect(await client.ttl(keys().message(peer, id))).toBe(-1);

      const { seen } = await watchInbox(client, keys().inbox(peer), 1, 5000);
      const got = seen.get(id);
      expect(got).toBeDefined();
      const member = got?.member as string;
      // A few ms after due (generous bound), exactly the scheduled bytes, the peers' score.
      expect(got?.firstSeenMs ?? 0).toBeLessThan(dueOf(member) + 1500);
      expect(member).toBe(hash.member);
      const env = JSON.parse(member);
      expect(Object.keys(env)).toEqual([...FIELDS]);
      expect(Number(await client.zscore(keys().inbox(peer), member))).toBe(
        wireScore(Priority.HIGH, env.timestamp),
      );
      expect(await system.messageStatus(id, peer)).toBe("pending");
      const after = await client.hgetall(keys().message(peer, id));
      expect(after.member).toBeUndefined();
      expect(after.due).toBeUndefined();
      expect(await client.zcard(keys().scheduled(peer))).toBe(0);
    });

    it("runs due messages in priority order, FIFO by due time, in a redactor inbox", async () => {
      const client = backend().client();
      const system = await newSystem();
      const app = uniqueId("ordered");
      // A redactor inbox (canonical scores), whose actor starts once everything is due.
      await client.hset(keys().status(app), "ordering", "fifo-v1");
      const at = Date.now() + 600;
      const ref = system.ref(app);
      await ref.tell("t", { name: "low" }, { at, priority: Priority.LOW });
      await ref.tell("t", { name: "normal-2" }, { at: at + 2, priority: Priority.NORMAL });
      await ref.tell("t", { name: "normal-1" }, { at: new Date(at + 1), priority: Priority.NORMAL });
      await ref.tell("t", { name: "critical" }, { at, priority: Priority.CRITICAL });
      await ref.tell("t", { name: "now" }, { priority: Priority.LOW });
      const names = async () =>
        (await client.zrange(keys().inbox(app), 0, -1)).map((m) => JSON.parse(m).payload.name as string);
      expect(await names()).toEqual(["now"]);
      await waitFor(async () => (await client.zcard(keys().scheduled(app))) === 0, 5000, "all due");
      const handled: string[] = [];
      await system.spawn(
        defineActor({
          id: app,
          handlers: {},
          fallback: (payload) => {
            handled.push((payload as { name: string }).name);
          },
        }),
      );
      await waitFor(() => handled.length === 5, 5000, "the messages");
      // Strict priority; FIFO within LOW: "now" was sent before "low" was due.
      expect(handled).toEqual(["critical", "normal-1", "normal-2", "now", "low"]);
    });

    it("cancels a message not yet due (true), not one delivered or unknown (false)", async () => {
      const client = backend().client();
      const system = await newSystem();
      const other = await newSystem();
      const peer = uniqueId("peer");
      const ref = system.ref(peer);
      const cancelled = await ref.tell("t", { n: 1 }, { delayMs: 400 });
      const kept = await ref.tell("t", { n: 2 }, { delayMs: 400 });
      const far = await ref.tell("t", { n: 3 }, { delayMs: 60_000 });
      expect(await system.cancel(cancelled)).toBe(true);
      expect(await system.messageStatus(cancelled, peer)).toBe("cancelled");
      expect(await system.cancel(cancelled)).toBe(false);
      // Another system finds it by its recipient, or (cluster) by a SCAN.
      expect(await other.cancel(far, peer)).toBe(true);
      const farToo = await ref.tell("t", { n: 4 }, { delayMs: 60_000 });
      expect(await other.cancel(farToo)).toBe(true);
      const { seen } = await watchInbox(client, keys().inbox(peer), 1, 5000);
      expect([...seen.keys()]).toEqual([kept]);
      await new Promise((r) => setTimeout(r, 300));
      expect((await client.zrange(keys().inbox(peer), 0, -1)).map(idOf)).toEqual([kept]);
      expect(await system.cancel(kept)).toBe(false);
      expect(await system.cancel(uniqueId("never-sent"), peer)).toBe(false);
      expect(await client.zcard(keys().scheduled(peer))).toBe(0);
    });

    it("cancelling a scheduled ask fails it at once (AskFailedError, reason cancelled), here or from another process", async () => {
      const client = backend().client();
      const system = await newSystem();
      const other = await newSystem();
      const peer = uniqueId("peer");
      const scheduledId = async (): Promise<string> => {
        let ids: string[] = [];
        await waitFor(
          async () => {
            ids = await client.zrange(keys().scheduled(peer), 0, -1);
            return ids.length === 1;
          },
          5000,
          "the scheduled ask",
        );
        return ids[0] as string;
      };
      for (const canceller of [system, other]) {
        const started = Date.now();
        const outcome = system
          .ref(peer)
          .ask("q", {}, { delayMs: 5000, timeoutMs: 5000 })
          .catch((err: unknown) => err);
        const id = await scheduledId();
        expect(await canceller.cancel(id, peer)).toBe(true);
        const err = (await outcome) as AskFailedError;
        // At once, not after the delay and the timeout (10 s).
        expect(Date.now() - started).toBeLessThan(3000);
        expect(err).toBeInstanceOf(AskFailedError);
        expect(err).toMatchObject({ reason: "cancelled", messageId: id, recipient: peer, messageType: "q" });
        expect(err.message).toMatch(/cancelled \(system\.cancel\) before it was due/);
      }
      // A scheduled ask that times out names its wait in whole ms.
      const timedOut = await system
        .ref(peer)
        .ask("q", {}, { delayMs: 50.5, timeoutMs: 100 })
        .catch((err: unknown) => err);
      expect(timedOut).toBeInstanceOf(AskTimeoutError);
      expect(Number.isInteger((timedOut as AskTimeoutError).timeoutMs)).toBe(true);
      expect((timedOut as Error).message).toMatch(/within \d+ ms;/);
    });

    it("does not schedule an id twice, nor send one that is scheduled", async () => {
      const client = backend().client();
      const system = await newSystem();
      const peer = uniqueId("peer");
      const ref = system.ref(peer);
      const id = uniqueId("dup");
      expect(await ref.tell("t", { n: 1 }, { id, delayMs: 300 })).toBe(id);
      expect(await ref.tell("t", { n: 2 }, { id, delayMs: 100 })).toBe(id);
      expect(await ref.tell("t", { n: 3 }, { id })).toBe(id);
      expect(await client.zcard(keys().inbox(peer))).toBe(0);
      await watchInbox(client, keys().inbox(peer), 1, 5000);
      // Pending now: scheduling it again is a duplicate as well.
      await ref.tell("t", { n: 4 }, { id, delayMs: 100 });
      await new Promise((r) => setTimeout(r, 500));
      const members = await client.zrange(keys().inbox(peer), 0, -1);
      expect(members.map((m) => JSON.parse(m).payload.n)).toEqual([1]);
      expect(await client.zcard(keys().scheduled(peer))).toBe(0);
    });

    it("ask with delayMs resolves; its timeout counts from the delivery", async () => {
      const system = await newSystem();
      const app = uniqueId("echo");
      await system.spawn(defineActor({ id: app, handlers: { echo: (p: unknown) => p as never } }));
      const started = Date.now();
      const reply = await system.ref(app).ask("echo", { x: 1 }, { delayMs: 1200, timeoutMs: 1000 });
      expect(reply).toEqual({ x: 1 });
      expect(Date.now() - started).toBeGreaterThanOrEqual(1100);
    });

    it("takes `at` as a Date or epoch ms; a time in the past or delayMs 0 sends at once", async () => {
      const client = backend().client();
      const system = await newSystem();
      const peer = uniqueId("peer");
      const ref = system.ref(peer);
      const past = await ref.tell("t", { n: "past" }, { at: new Date(Date.now() - 60_000) });
      const zero = await ref.tell("t", { n: "zero" }, { delayMs: 0 });
      expect(await system.messageStatus(past, peer)).toBe("pending");
      expect(await system.messageStatus(zero, peer)).toBe("pending");
      const byDate = await ref.tell("t", { n: "date" }, { at: new Date(Date.now() + 500) });
      const byMs = await ref.tell("t", { n: "ms" }, { at: Date.now() + 500 });
      expect(await system.messageStatus(byDate, peer)).toBe("scheduled");
      expect(await system.messageStatus(byMs, peer)).toBe("scheduled");
      const { seen } = await watchInbox(client, keys().inbox(peer), 4, 5000);
      expect(new Set(seen.keys())).toEqual(new Set([past, zero, byDate, byMs]));
    });

    it("refuses bad scheduling options before sending anything", async () => {
      const system = await newSystem();
      const ref = system.ref(uniqueId("peer"));
      const bad: object[] = [
        { delayMs: -1 },
        { delayMs: Number.NaN },
        { delayMs: Number.POSITIVE_INFINITY },
        { delayMs: "100" },
        { delayMs: 11 * 365 * 24 * 3600 * 1000 },
        { at: new Date("not a date") },
        { at: "2030-01-01" },
        { at: Number.NaN },
        { at: Date.now() + 11 * 365 * 24 * 3600 * 1000 },
        { delayMs: 10, at: Date.now() + 10 },
      ];
      for (const options of bad) {
        await expect(ref.tell("t", {}, options as never), JSON.stringify(options)).rejects.toBeInstanceOf(
          InvalidOptionError,
        );
        await expect(ref.ask("t", {}, options as never)).rejects.toBeInstanceOf(InvalidOptionError);
      }
      await expect(ref.tell("t", {}, { delayMs: -1 })).rejects.toThrow(/delayMs/);
      await expect(ref.tell("t", {}, { delayMs: 1, at: 1 })).rejects.toThrow(/not both/);
      await expect(system.cancel("")).rejects.toBeInstanceOf(InvalidOptionError);
    });

    it("moves messages due in the same ms CRITICAL first, across many promotions, to a running actor", async () => {
      const system = await newSystem();
      const app = uniqueId("same-ms");
      const handled: number[] = [];
      await system.spawn(
        defineActor<{ t: { payload: { p: number } } }>({
          id: app,
          handlers: {
            t: (payload) => {
              handled.push(payload.p);
            },
          },
        }),
      );
      const N = 2400;
      const at = Date.now() + 1500;
      const priorities = [Priority.LOW, Priority.NORMAL, Priority.HIGH, Priority.CRITICAL];
      const ref = system.ref<{ t: { payload: { p: number } } }>(app);
      const priorityOf = new Map<string, number>();
      for (let i = 0; i < N; i += 400) {
        await Promise.all(
          Array.from({ length: 400 }, async (_, k) => {
            const p = priorities[(i + k) % 4] as Priority;
            priorityOf.set(await ref.tell("t", { p }, { at, priority: p }), p);
          }),
        );
      }
      // The order promote.lua takes them in: every CRITICAL before every HIGH, and so on.
      const waiting = (await backend().client().zrange(keys().scheduled(app), 0, -1)).map((id) =>
        priorityOf.get(id),
      );
      expect(waiting).toHaveLength(N);
      expect(waiting).toEqual([...waiting].sort((a, b) => (b as number) - (a as number)));
      await waitFor(() => handled.length === N, 20_000, "every message");
      // More than one promote.lua call's worth, all due in one ms: never a lower priority first.
      const inversions = handled.filter((p, i) => i > 0 && p > (handled[i - 1] as number)).length;
      expect(inversions).toBe(0);
    });

    it("keeps a waiting message without a TTL, so it is delivered after an outage longer than the TTL", async () => {
      const client = backend().client();
      const app = uniqueId("no-ttl");
      const sender = await newSystem({ messageTtlSeconds: 1 });
      const id = await sender.ref(app).tell("t", {}, { delayMs: 300 });
      expect(await client.ttl(keys().message(app, id))).toBe(-1);
      await sender.shutdown();
      // No process runs past the due time plus the message TTL.
      await new Promise((r) => setTimeout(r, 2000));
      await newSystem({ messageTtlSeconds: 1 });
      const { seen } = await watchInbox(client, keys().inbox(app), 1, 5000);
      expect([...seen.keys()]).toEqual([id]);
      expect(await client.ttl(keys().message(app, id))).toBeGreaterThan(0);
    });

    it("a process that scheduled and was SIGKILLed: another system delivers its messages", async () => {
      const client = backend().client();
      const peer = uniqueId("peer");
      const worker = await startWorker("scheduled-sender", {
        ...backendEnv(backend()),
        APP_ID: uniqueId("sender"),
        RECIPIENT: peer,
        DELAY_MS: "1500",
        COUNT: "3",
      });
      await worker.kill("SIGKILL");
      expect(await client.zcard(keys().scheduled(peer))).toBe(3);
      // Nobody runs until after the due time; a system started then delivers at once.
      await new Promise((r) => setTimeout(r, 1700));
      expect(await client.zcard(keys().inbox(peer))).toBe(0);
      await newSystem();
      const { seen } = await watchInbox(client, keys().inbox(peer), 3, 5000);
      expect(seen.size).toBe(3);
    });

    it("the CLI's inspect lists an app's scheduled messages: due time, type, id", async () => {
      const system = await newSystem();
      const peer = uniqueId("peer");
      const ref = system.ref(peer);
      const soon = await ref.tell("land", {}, { delayMs: 60_000 });
      const later = await ref.tell("takeoff", {}, { delayMs: 120_000 });
      const env = { ...process.env, ...backendEnv(backend()), REDACTOR_LOG_LEVEL: "error" };
      const json = await runProcess([...CLI, "inspect", peer, "--json"], env);
      expect(json.code, json.stderr).toBe(0);
      const view = JSON.parse(json.stdout) as {
        scheduled: { total: number; entries: { id: string; type: string; sender: string; due: number }[] };
      };
      expect(view.scheduled.total).toBe(2);
      expect(view.scheduled.entries.map((e) => [e.id, e.type, e.sender])).toEqual([
        [soon, "land", system.appId],
        [later, "takeoff", system.appId],
      ]);
      expect(view.scheduled.entries[0]?.due).toBeGreaterThan(Date.now() + 50_000);
      const human = await runProcess([...CLI, "inspect", peer], env);
      expect(human.stdout).toContain("scheduled: 2");
      expect(human.stdout).toMatch(new RegExp(`in \\S+\\s+\\S+Z\\s+${soon}\\s+land`));
      await system.cancel(soon);
      await system.cancel(later);
    });

    it("the CLI's message shows a scheduled message: status, due time, where it waits, its priority", async () => {
      const system = await newSystem();
      const peer = uniqueId("peer");
      const id = await system.ref(peer).tell("land", {}, { delayMs: 60_000, priority: Priority.HIGH });
      const env = { ...process.env, ...backendEnv(backend()), REDACTOR_LOG_LEVEL: "error" };
      const human = await runProcess([...CLI, "message", id, "--app", peer], env);
      expect(human.code, human.stderr).toBe(0);
      const row = (name: string) => human.stdout.match(new RegExp(`^${name}\\s+(.*)$`, "m"))?.[1];
      expect(row("status")).toBe("scheduled");
      expect(row("priority")).toBe("HIGH");
      expect(row("due")).toMatch(/Z \(in (59|60|1m)/);
      expect(row("where")).toContain(`scheduled (${keys().scheduled(peer)}), due in `);
      expect(human.stdout).not.toMatch(/^\s+\S+\s+sent\s/m);
      expect(human.stdout).toMatch(/^\s+-\s+scheduled\s+by .* due \S+Z$/m);
      const json = await runProcess([...CLI, "message", id, "--app", peer, "--json"], env);
      const view = JSON.parse(json.stdout) as { status: string; due: number; locations: { where: string }[] };
      expect(view.status).toBe("scheduled");
      expect(view.due).toBeGreaterThan(Date.now() + 50_000);
      expect(view.locations.map((l) => l.where)).toEqual(["scheduled"]);
      await system.cancel(id);
    });

    it("property: every message not cancelled is delivered once, never before due; cancelled ones never", async () => {
      const client = backend().client();
      const systems = [await newSystem(), await newSystem()];
      await fc.assert(
        fc.asyncProperty(
          fc.array(
            fc.record({
              delayMs: fc.integer({ min: 0, max: 700 }),
              priority: fc.constantFrom(Priority.LOW, Priority.NORMAL, Priority.HIGH, Priority.CRITICAL),
              cancelAfterMs: fc.option(fc.integer({ min: 0, max: 500 }), { nil: undefined }),
              from: fc.integer({ min: 0, max: 1 }),
            }),
            { minLength: 1, maxLength: 12 },
          ),
          async (specs) => {
            const peer = uniqueId("prop");
            const later = new Set<string>();
            const sent = await Promise.all(
              specs.map(async (spec, i) => {
                const system = systems[spec.from] as ActorSystem;
                const id = await system.ref(peer).tell("t", { i }, spec);
                if (spec.delayMs > 0) later.add(id);
                let cancelled: Promise<boolean> | undefined;
                if (spec.cancelAfterMs !== undefined) {
                  const after = spec.cancelAfterMs;
                  cancelled = new Promise((r) => setTimeout(r, after)).then(() =>
                    (systems[1 - spec.from] as ActorSystem).cancel(id, peer),
                  );
                }
                return { id, cancelled };
              }),
            );
            const outcomes = await Promise.all(sent.map((s) => s.cancelled ?? Promise.resolve(false)));
            const expected = sent.filter((_, i) => !outcomes[i]).map((s) => s.id);
            const isLater = (id: string) => later.has(id);
            const inbox = keys().inbox(peer);
            const { seen, all } = await watchInbox(client, inbox, expected.length, 5000, true, isLater);
            // Anything late or duplicated shows up within a little longer.
            await new Promise((r) => setTimeout(r, 200));
            const late = await watchInbox(client, inbox, Number.POSITIVE_INFINITY, 50, true, isLater);
            const delivered = [...all, ...late.all].map(idOf);
            expect(delivered.sort()).toEqual([...expected].sort());
            for (const id of expected) expect(seen.has(id)).toBe(true);
            expect(await client.zcard(keys().scheduled(peer))).toBe(0);
          },
        ),
        { seed: 1234, numRuns: 8 },
      );
    });
  },
  MASTERS_ONLY,
);

describe("scheduled messages across a Redis restart (AOF)", () => {
  const redis = useRedis({ appendOnly: true });
  const newSystem = useSystems(redis);

  it("a message scheduled before the restart is delivered after it", async () => {
    const system = await newSystem();
    const client = redis().client();
    const peer = uniqueId("peer");
    const id = await system.ref(peer).tell("t", { n: 1 }, { delayMs: 1500 });
    await redis().restart(300);
    expect(await client.zcard(`queue:${peer}:scheduled`)).toBe(1);
    const { seen } = await watchInbox(client, `queue:${peer}:inbox`, 1, 8000);
    expect([...seen.keys()]).toEqual([id]);
  });
});
