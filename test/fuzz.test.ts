/**
 * Fuzzing the inbox: arbitrary members (test/harness/member-arbitraries.ts) are written straight
 * into an actor's inbox as bytes, interleaved with valid messages sent by a redactor system and
 * by peers, while a real actor serves it (pre-empted by a CRITICAL message, stopped mid-batch
 * and spawned again). Once it is quiet, every member is held against the oracle
 * (test/harness/member-oracle.ts):
 *
 *  - the actor never stops: a message sent after the batch is still handled;
 *  - every valid message runs exactly once (counted by its tag, else its id, in the handler);
 *  - every refused member is dead-lettered exactly once, with a reason, its stored bytes intact;
 *  - nothing vanishes: each member ends in the dead letters, ran, or timed out (none is left in
 *    the inbox or in processing), and nothing runs or dies that nobody wrote;
 *  - message:<id> agrees: `completed` for one that ran, `failed` for a dead letter that names
 *    its id, `timeout` for an expired one; a dead letter never names an id that is not the
 *    member's;
 *  - one payload gets the same verdict whichever way it was sent (tell, tell with a deadline,
 *    ask); members sharing an id run once between them;
 *  - no script or command fails: `INFO errorstats` and the failed and rejected calls of
 *    `INFO commandstats` are unchanged.
 *
 * Seeded and replayable: the seed is printed; FUZZ_SEED=<seed> (and FUZZ_PATH=<path> from a
 * failure report) replays a run, FUZZ_RUNS sets how many (`npm run fuzz` for a long run).
 */
import fc from "fast-check";
import type { Redis } from "ioredis";
import { describe, it } from "vitest";
import { type ActorDefinition, type ActorSystem, createSystem, defineActor, Priority } from "../src/index.js";
import {
  buildJunk,
  buildMember,
  type Item,
  itemArb,
  type Score,
  scoreText,
  showMember,
  type TellPayload,
  tellPayload,
} from "./harness/member-arbitraries.js";
import { judge, luaReading, type Outcome, type Verdict } from "./harness/member-oracle.js";
import { uniqueId, useRedis } from "./harness/redis.js";
import { captureLogger } from "./harness/system.js";

const redis = useRedis();

/** The serving system's maxMessageBytes: small, so oversize members are cheap to write. */
const MAX_BYTES = 8192;
/** How long the message sent after the batch may take before the actor counts as stopped. */
const SENTINEL_MS = 10_000;
/** How long the inbox and processing set may take to empty once the sentinel ran. */
const QUIET_MS = 8_000;

const LONG = process.env.FUZZ_LONG === "1";
const RUNS = Number(process.env.FUZZ_RUNS ?? (LONG ? 2000 : 100));
/** `npm test` replays one fixed seed; `npm run fuzz` draws a new one each time. */
const SEED =
  process.env.FUZZ_SEED !== undefined
    ? Number(process.env.FUZZ_SEED)
    : LONG
      ? (Date.now() ^ (Math.random() * 2 ** 31)) | 0
      : 20261129;
const PATH = process.env.FUZZ_PATH;
/** The short run stops starting new runs (and shrinking) after this long. */
const TIME_LIMIT_MS = Number(process.env.FUZZ_TIME_LIMIT_MS ?? (LONG ? 6 * 3600_000 : 45_000));

/** One scenario. */
interface Plan {
  items: Item[];
  /** Items before this index are written before the actor is spawned, the rest while it serves. */
  spawnAt: number;
  claimBatch: number;
  handlerDelayMs: number;
  /** After this many handler runs a CRITICAL message arrives (the batch in hand is pre-empted). */
  criticalAfter: number | null;
  /** After this many handler runs the actor is stopped mid-batch and spawned again. */
  stopAfter: number | null;
}

const planArb: fc.Arbitrary<Plan> = fc
  .record({
    items: fc.array(itemArb, { minLength: 1, maxLength: 30 }),
    spawnAt: fc.nat(40),
    claimBatch: fc.integer({ min: 1, max: 16 }),
    handlerDelayMs: fc.constantFrom(0, 1, 3),
    criticalAfter: fc.option(fc.integer({ min: 1, max: 20 })),
    stopAfter: fc.option(fc.integer({ min: 1, max: 20 })),
  })
  .map((p) => ({ ...p, spawnAt: Math.min(p.spawnAt, p.items.length) }));

/** A member written to the inbox, as the test knows it. */
interface Written {
  label: string;
  /** Its bytes; for tells and asks, found in the sender's outbox after the run. */
  bytes?: Buffer;
  /** Tells and asks: the tag to find it by. */
  tag?: string;
  /** Twins: members whose verdicts (ran or dead) must agree. */
  group?: string;
  /** An ask that failed: when its member was never written, it was refused at the sender. */
  sendError?: Error;
}

/** A dead letter, read as bytes. */
interface DeadEntry {
  raw: Buffer;
  reason: unknown;
  id: Buffer | null;
  member: Buffer | null;
}

/** Reads a dead-letter entry without losing bytes: the JSON is read one char per byte. */
function readDeadEntry(raw: Buffer): DeadEntry {
  try {
    const entry = JSON.parse(raw.toString("latin1")) as Record<string, unknown>;
    const bytes = (v: unknown) => {
      if (typeof v !== "string") return null;
      // A char above 0xff came from a \u escape of a non-latin1 char: take it as UTF-8.
      return Buffer.concat(
        [...v].map((c) => (c.charCodeAt(0) <= 0xff ? Buffer.from(c, "latin1") : Buffer.from(c))),
      );
    };
    // A member that is not UTF-8 text is kept hex-encoded.
    const member =
      typeof entry.message_hex === "string" ? Buffer.from(entry.message_hex, "hex") : bytes(entry.message);
    return { raw, reason: entry.reason, id: bytes(entry.id), member };
  } catch {
    return { raw, reason: undefined, id: null, member: null };
  }
}

/**
 * Error counters: `INFO errorstats` per error prefix, and per command the `failed_calls` and
 * `rejected_calls` of `INFO commandstats` (a failing script counts against EVALSHA). ioredis'
 * `CLIENT SETINFO` on every new connection (unknown before Redis 7.2) adds to errorstat_ERR
 * without counting against any command, so ERR alone is read through the command counters.
 */
async function errorStats(admin: Redis): Promise<Map<string, number>> {
  const stats = new Map<string, number>();
  for (const line of (await admin.info("errorstats")).split("\r\n")) {
    const m = /^errorstat_([^:]+):count=(\d+)/.exec(line);
    if (m && m[1] !== "ERR") stats.set(`errorstat ${m[1]}`, Number(m[2]));
  }
  for (const line of (await admin.info("commandstats")).split("\r\n")) {
    const m = /^cmdstat_([^:]+):.*rejected_calls=(\d+),failed_calls=(\d+)/.exec(line);
    if (m) {
      stats.set(`${m[1]} rejected_calls`, Number(m[2]));
      stats.set(`${m[1]} failed_calls`, Number(m[3]));
    }
  }
  return stats;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(check: () => boolean | Promise<boolean>, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return true;
    await sleep(20);
  }
  return check();
}

function describeItem(i: number, item: Item): string {
  const { via } = item;
  if (via === "tell" || via === "ask" || via === "twins")
    return `#${i} ${via} ${item.payload} priority=${item.priority}${"timeoutMs" in item && item.timeoutMs ? ` timeoutMs=${item.timeoutMs}` : ""}`;
  const score = typeof item.score === "string" ? item.score : JSON.stringify(item.score);
  if (via === "junk") return `#${i} junk ${item.junk.k} score=${score}`;
  const muts = item.env.mutations.map((m) => JSON.stringify(m)).join(" ");
  return `#${i} ${via} score=${score}${muts ? ` mutations: ${muts}` : ""}`;
}

let runCount = 0;

/** Runs one plan against a fresh actor; throws an Error listing every property it broke. */
async function runPlan(plan: Plan, admin: Redis): Promise<void> {
  runCount += 1;
  const app = uniqueId("fuzz");
  const sysApp = uniqueId("fuzz-sys");
  const inbox = `queue:${app}:inbox`;
  const processing = `queue:${app}:processing`;
  const deadKey = `queue:${app}:dead`;
  const { logger, lines } = captureLogger();
  const system: ActorSystem = await createSystem({
    appId: sysApp,
    redis: redis().url,
    logger,
    maxMessageBytes: MAX_BYTES,
    leaseMs: 3000,
    sweepMs: 250,
    shutdownTimeoutMs: 3000,
    askTimeoutMs: 20_000,
  });
  const violations: string[] = [];
  const written: Written[] = [];
  const runs: { tag: string | null; id: string }[] = [];
  const background: Promise<unknown>[] = [];
  const genuineIds: string[] = [];
  let restarting: Promise<void> | undefined;
  let spawned = false;
  const tellTag = (label: string) => `${app}-t${written.length}-${label}`;

  const definition: ActorDefinition = defineActor({
    id: app,
    claimBatch: plan.claimBatch,
    handlers: {},
    fallback: async (payload: unknown, ctx) => {
      const tag = (payload as { tag?: unknown } | null)?.tag;
      runs.push({ tag: typeof tag === "string" ? tag : null, id: ctx.message.id });
      if (runs.length === plan.criticalAfter) {
        const t = tellTag("critical");
        written.push({ label: `CRITICAL tell after ${runs.length} runs`, tag: t });
        background.push(
          system
            .ref(app)
            .tell("fuzz", { tag: t }, { priority: Priority.CRITICAL })
            .catch((err: Error) => violations.push(`[send] the CRITICAL tell failed: ${err.message}`)),
        );
      }
      // Once spawn() has resolved: stop() while spawn() is still finishing is another matter.
      if (runs.length >= (plan.stopAfter ?? Number.POSITIVE_INFINITY) && spawned && !restarting) {
        restarting = (async () => {
          await system.stop(app);
          await system.spawn(definition);
        })().catch((err: Error) => {
          violations.push(`[restart] stopping and spawning the actor again failed: ${err.message}`);
        });
      }
      if (plan.handlerDelayMs > 0) await sleep(plan.handlerDelayMs);
      return ctx.message.message_type === "fuzz-ask" ? { ok: true } : undefined;
    },
  });

  const zadd = (score: Score, bytes: Buffer, priority: 1 | 2 | 3 | 4, timestamp: number) =>
    admin.zadd(inbox, scoreText(score, priority, timestamp), bytes);

  /** Sends an ask without waiting for it; its reply or failure is not this test's business. */
  const ask = (entry: Written, item: { priority: 1 | 2 | 3 | 4; payload: TellPayload }) => {
    written.push(entry);
    background.push(
      system
        .ref(app)
        .ask("fuzz-ask", tellPayload(item.payload, entry.tag as string), {
          priority: item.priority,
          timeoutMs: 20_000,
        })
        .catch((err: Error) => {
          entry.sendError = err;
        }),
    );
  };

  const write = async (i: number, item: Item) => {
    const label = describeItem(i, item);
    const nowSec = Date.now() / 1000;
    const ctx = {
      app,
      id: `${app}-m${i}`,
      tag: `${app}-g${i}`,
      freshId: `${app}-f${i}`,
      uniqueInt: (Date.now() % 1e9) * 1000 + i,
      genuineIds,
      maxMessageBytes: MAX_BYTES,
      nowSec,
    };
    switch (item.via) {
      case "tell":
      case "twins": {
        const ways: [string, number | null][] =
          item.via === "tell"
            ? [["tell", item.timeoutMs]]
            : [
                ["tell", null],
                ["tell", 3_600_000],
              ];
        for (const [way, timeoutMs] of ways) {
          const tag = tellTag(way);
          const entry: Written = {
            label: `${label} (${way}${timeoutMs ? " with timeoutMs" : ""})`,
            tag,
            group: item.via === "twins" ? `twins ${i}` : undefined,
          };
          try {
            const id = await system.ref(app).tell("fuzz", tellPayload(item.payload, tag), {
              priority: item.priority,
              ...(timeoutMs ? { timeoutMs } : {}),
            });
            written.push(entry);
            if (item.payload === "plain" && !timeoutMs) genuineIds.push(id);
          } catch {
            // Refused at the sender: nothing was written.
          }
        }
        if (item.via === "tell") return;
        // The third twin: an ask (its reply or failure is not this test's business).
        const tag = tellTag("ask");
        ask({ label: `${label} (ask)`, tag, group: `twins ${i}` }, item);
        return;
      }
      case "ask":
        ask({ label, tag: tellTag("ask") }, item);
        return;
      case "junk": {
        const bytes = buildJunk(item.junk);
        written.push({ label, bytes });
        await zadd(item.score, bytes, 2, nowSec);
        return;
      }
      case "sameId": {
        const genuine = genuineIds[item.genuine % Math.max(1, genuineIds.length)];
        const built = buildMember(item.env, ctx, genuine);
        written.push({ label: `${label} (id ${genuine ?? "fresh"})`, bytes: built.bytes });
        await zadd(item.score, built.bytes, built.priority, built.timestamp);
        await admin.publish(`channel:${app}`, `new_message:${built.id}`);
        return;
      }
      case "peer":
      case "bare": {
        const built = buildMember(item.env, ctx);
        written.push({ label, bytes: built.bytes });
        const score = scoreText(item.score, built.priority, built.timestamp);
        if (item.via === "bare") {
          await admin.zadd(inbox, score, built.bytes);
        } else {
          // The peers' three commands, in one transaction: a peer's HSET pending landing after
          // the actor already finished the message is the peers' race, not what is tested here.
          const key = `message:${built.id}`;
          const tx = admin
            .multi()
            .zadd(inbox, score, built.bytes)
            .publish(`channel:${app}`, `new_message:${built.id}`)
            .hset(key, {
              status: "pending",
              sender: item.env.sender,
              recipient: app,
              timestamp: String(built.timestamp),
              type: item.env.type,
            });
          if (built.timeout !== null) tx.expire(key, built.timeout);
          await tx.exec();
        }
        if (item.env.mutations.length === 0 && item.env.deadline !== "past") genuineIds.push(built.id);
        return;
      }
    }
  };

  const errorsBefore = await errorStats(admin);
  const sentinelTag = `${app}-sentinel`;
  try {
    for (const [i, item] of plan.items.entries()) {
      if (i === plan.spawnAt) {
        await system.spawn(definition);
        spawned = true;
      }
      await write(i, item);
    }
    if (plan.spawnAt >= plan.items.length) {
      await system.spawn(definition);
      spawned = true;
    }
    written.push({ label: "sentinel tell after the batch (LOW)", tag: sentinelTag });
    await system.ref(app).tell("fuzz", { tag: sentinelTag }, { priority: Priority.LOW });

    // Quiet: the sentinel ran (or the actor visibly keeps failing), the inbox and processing are empty.
    const servingFailed = () =>
      lines.filter((l) => String(l.msg).startsWith("serving the inbox failed")).length;
    const sentinelRan = await until(
      () => runs.some((r) => r.tag === sentinelTag) || servingFailed() >= 3,
      SENTINEL_MS,
    );
    if (!sentinelRan || !runs.some((r) => r.tag === sentinelTag)) {
      const errors = lines
        .filter((l) => Number(l.level) >= 50)
        .slice(0, 3)
        .map((l) => `${l.msg}: ${(l.err as { message?: string } | undefined)?.message ?? ""}`);
      violations.push(
        `[actor stopped] a valid message sent after the batch was not handled (${runs.length} runs so far); errors logged: ${errors.join(" | ") || "none"}`,
      );
    }
    await restarting;
    await until(
      async () => (await admin.zcard(inbox)) === 0 && (await admin.zcard(processing)) === 0,
      QUIET_MS,
    );
    await Promise.race([Promise.all(background), sleep(1000)]);
    await sleep(100);

    const errorsAfter = await errorStats(admin);
    for (const [name, count] of errorsAfter) {
      const before = errorsBefore.get(name) ?? 0;
      if (count > before) violations.push(`[script error] INFO ${name}: ${before} -> ${count}`);
    }
    violations.push(...(await account(admin, { app, sysApp, inbox, processing, deadKey, written, runs })));
  } finally {
    await system.shutdown();
  }
  if (violations.length > 0) {
    throw new Error(
      `${violations.length} properties broken (run ${runCount}, app ${app}):\n  ${violations.join("\n  ")}`,
    );
  }
}

interface Accounting {
  app: string;
  sysApp: string;
  inbox: string;
  processing: string;
  deadKey: string;
  written: Written[];
  runs: { tag: string | null; id: string }[];
}

/** Holds every member written against the oracle; returns the broken properties. */
async function account(admin: Redis, a: Accounting): Promise<string[]> {
  const v: string[] = [];
  const hex = (b: Buffer) => b.toString("hex");
  const inboxLeft = new Set((await admin.zrangeBuffer(a.inbox, 0, -1)).map(hex));
  const processingLeft = new Set((await admin.zrangeBuffer(a.processing, 0, -1)).map(hex));
  const deadEntries = (await admin.zrangeBuffer(a.deadKey, 0, -1)).map(readDeadEntry);
  const outbox = await admin.zrangeBuffer(`queue:${a.sysApp}:outbox`, 0, -1);
  const byTag = new Map<string, Buffer>();
  for (const m of outbox) {
    try {
      const tag = (JSON.parse(m.toString("utf8")) as { payload?: { tag?: unknown } }).payload?.tag;
      if (typeof tag === "string") byTag.set(tag, m);
    } catch {
      // not ours
    }
  }

  // The members, once each (ZADD of equal bytes is one member).
  interface Member {
    labels: string[];
    bytes: Buffer;
    group?: string;
    verdict: Verdict;
    runs: number;
    dead: DeadEntry[];
  }
  const members = new Map<string, Member>();
  const nowSec = Date.now() / 1000;
  for (const w of a.written) {
    const bytes = w.bytes ?? (w.tag ? byTag.get(w.tag) : undefined);
    if (!bytes) {
      if (w.sendError && w.sendError.name !== "AskTimeoutError") continue;
      v.push(
        `[lost at send] ${w.label}: the send succeeded but its member is not in queue:${a.sysApp}:outbox`,
      );
      continue;
    }
    const key = hex(bytes);
    const existing = members.get(key);
    if (existing) {
      existing.labels.push(w.label);
      continue;
    }
    const verdict = judge(bytes, MAX_BYTES, await luaReading(admin, bytes), nowSec);
    members.set(key, { labels: [w.label], bytes, group: w.group, verdict, runs: 0, dead: [] });
  }
  const name = (m: Member) => `${m.labels.join(" = ")}: ${showMember(m.bytes)}`;

  // Runs, attributed by tag, else by id.
  const byRunTag = new Map<string, Member>();
  const byRunId = new Map<string, Member[]>();
  for (const m of members.values()) {
    if (m.verdict.tag !== null) byRunTag.set(m.verdict.tag, m);
    else if (m.verdict.id !== null) byRunId.set(m.verdict.id, [...(byRunId.get(m.verdict.id) ?? []), m]);
  }
  for (const r of a.runs) {
    const m = (r.tag !== null ? byRunTag.get(r.tag) : undefined) ?? byRunId.get(r.id)?.[0];
    if (m) m.runs += 1;
    else
      v.push(`[phantom run] the handler ran a message nobody wrote: id ${JSON.stringify(r.id)} tag ${r.tag}`);
  }
  for (const d of deadEntries) {
    const m = d.member ? members.get(hex(d.member)) : undefined;
    if (m) m.dead.push(d);
    else
      v.push(
        `[unknown dead letter] its member matches no member written byte for byte: ${showMember(d.raw, 400)}`,
      );
  }

  const status = async (idKey: Buffer) =>
    (await admin.hget(Buffer.concat([Buffer.from("message:"), idKey]), "status")) as string | null;

  // Members sharing an id: they run once between them (when one of them must run), and once one
  // ran, the others may be dropped as duplicates of a completed id instead of dead-lettered.
  const shared = new Map<string, Member[]>();
  for (const m of members.values()) {
    if (m.verdict.idKey) {
      const k = hex(m.verdict.idKey);
      shared.set(k, [...(shared.get(k) ?? []), m]);
    }
  }
  const inSharedGroup = new Set<Member>();
  const droppable = new Set<Member>();
  for (const group of shared.values()) {
    if (group.length < 2) continue;
    for (const m of group) inSharedGroup.add(m);
    const total = group.reduce((n, m) => n + m.runs, 0);
    const must = group.some((m) => m.verdict.allowed.length === 1 && m.verdict.allowed[0] === "ran");
    const id = group[0]?.verdict.id;
    if (total > 1 || (must && total === 0))
      v.push(
        `[same id] ${group.length} members with id ${JSON.stringify(id)} ran ${total} times between them (once is right): ${group.map(name).join(" | ")}`,
      );
    const st = await status(group[0]?.verdict.idKey as Buffer);
    if (total === 1 && st !== "completed")
      v.push(`[status] id ${JSON.stringify(id)} ran once but message:<id> is ${st} (completed is right)`);
    if (total === 1 || st === "timeout") for (const m of group) droppable.add(m);
  }

  const groupOutcomes = new Map<string, { outcome: Outcome; who: string }[]>();
  for (const m of members.values()) {
    const where = inboxLeft.has(hex(m.bytes))
      ? "inbox"
      : processingLeft.has(hex(m.bytes))
        ? "processing"
        : null;
    if (where) {
      v.push(`[stuck] still in ${where} after the actor went quiet: ${name(m)}`);
      continue;
    }
    if (m.runs > 1 && !inSharedGroup.has(m)) v.push(`[ran ${m.runs} times] ${name(m)}`);
    // The same bytes written again after the first copy was consumed are a new member.
    if (m.dead.length > m.labels.length) v.push(`[dead-lettered ${m.dead.length} times] ${name(m)}`);
    if (m.runs > 0 && m.dead.length > 0) v.push(`[ran and dead-lettered] ${name(m)}`);
    const st = m.verdict.idKey ? await status(m.verdict.idKey) : null;
    // For the report: what Lua's reading of the id says, when JavaScript found none.
    const luaSt =
      !m.verdict.idKey && m.verdict.allowedDeadIds[0] ? await status(m.verdict.allowedDeadIds[0]) : null;
    let outcome: Outcome | "dropped" | "vanished";
    if (m.runs > 0) outcome = "ran";
    else if (m.dead.length > 0) outcome = "dead";
    else if (st === "timeout" && m.verdict.allowed.includes("timeout")) outcome = "timeout";
    else outcome = droppable.has(m) ? "dropped" : "vanished";
    if (outcome === "dropped") continue;
    if (outcome === "vanished" || !m.verdict.allowed.includes(outcome)) {
      v.push(
        `[wrong verdict] expected ${m.verdict.allowed.join(" or ")} (${m.verdict.why}), got ${outcome}${st ? ` (status ${st})` : ""}${luaSt ? ` (status of the id Lua reads: ${luaSt})` : ""}: ${name(m)}`,
      );
      continue;
    }
    if (m.group && outcome !== "timeout") {
      groupOutcomes.set(m.group, [
        ...(groupOutcomes.get(m.group) ?? []),
        { outcome, who: m.labels[0] ?? "" },
      ]);
    }
    // A shared id's status is checked for the group above.
    if (outcome === "ran" && st !== "completed" && !inSharedGroup.has(m))
      v.push(`[status] ran, but message:<id> is ${st} (completed is right): ${name(m)}`);
    if (outcome === "timeout" && st !== "timeout" && !inSharedGroup.has(m))
      v.push(`[status] timed out, but status is ${st}: ${name(m)}`);
    if (outcome === "dead") {
      const entry = m.dead[0] as DeadEntry;
      if (typeof entry.reason !== "string" || entry.reason === "")
        v.push(`[no reason] dead letter without a reason: ${showMember(entry.raw, 400)}`);
      if (entry.id && !m.verdict.allowedDeadIds.some((id) => id.equals(entry.id as Buffer)))
        v.push(
          `[wrong id] dead letter names id ${showMember(entry.id)}, not the member's (${m.verdict.id === null ? "it has none" : JSON.stringify(m.verdict.id)}): ${name(m)}`,
        );
      const required = m.verdict.requiredDeadId;
      if (required) {
        if (!entry.id)
          v.push(
            `[id missing] dead letter (reason ${String(entry.reason)}) does not name the member's id: ${name(m)}`,
          );
        // A shared id's status belongs to the member that ran.
        const s = inSharedGroup.has(m) ? "failed" : await status(required);
        if (s !== "failed")
          v.push(`[status] dead-lettered, but message:<id> is ${s} (failed is right): ${name(m)}`);
      }
    }
  }
  for (const [group, outcomes] of groupOutcomes) {
    if (new Set(outcomes.map((o) => o.outcome)).size > 1)
      v.push(`[paths disagree] ${group}: ${outcomes.map((o) => `${o.who} -> ${o.outcome}`).join("; ")}`);
  }
  return v;
}

describe("fuzzing the inbox", () => {
  it(
    "arbitrary members never stop an actor, and every member is accounted for",
    async () => {
      const admin = redis().client();
      console.log(
        `fuzz: seed ${SEED}${PATH ? ` path ${PATH}` : ""}, ${RUNS} runs (replay: FUZZ_SEED=${SEED} FUZZ_RUNS=${RUNS} npm run fuzz)`,
      );
      await fc.assert(
        fc.asyncProperty(planArb, (plan) => runPlan(plan, admin)),
        {
          seed: SEED,
          path: PATH,
          numRuns: RUNS,
          endOnFailure: process.env.FUZZ_NO_SHRINK === "1",
          plugins: [fc.interruptAfterTimeLimit(TIME_LIMIT_MS)],
        },
      );
    },
    TIME_LIMIT_MS + 120_000,
  );
});
