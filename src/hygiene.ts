/**
 * Key hygiene: what is left in Redis by processes that are gone, and how to remove it.
 *
 * - `forget` deletes every key of one app (the list is the keyspace's, `Keyspace.appKeys`, so a
 *   new kind of per-app key cannot be missed), its `message:{app}:*` hashes and its entry in the
 *   `redactor:scheduled` index; it refuses an app that a live process serves or owns, or that a
 *   peer says is online, unless forced.
 * - `gc` finds leftovers that belong to nobody any more and removes them; it never touches an
 *   app that is online, served or owned by a live process, and it only judges two kinds of app:
 *   1. apps redactor made for a process rather than for an actor: a process's own `appId`
 *      (`role system` in its presence hash, src/presence.ts) and the CLI's ids (`redactor-cli`,
 *      `redactor-ask-…`, `redactor-run-…`), once no live process serves them, and only when
 *      nothing shows an actor (actorSigns: a `handles` field, timers, state, an activation
 *      key): an id that is (or was) served as an actor is an actor, whatever its `role` says.
 *      Their outbox copies, the replies and expired messages in their inbox and processing set,
 *      and, when nothing else is left, their presence hash go. For a CLI id every message goes
 *      (nobody reads the CLI's inbox after the command ended).
 *   2. inboxes that nobody ever announced (no presence hash at all, no processing, dead letters,
 *      scheduled messages, timers, state or activation): an ask to a misspelled id. Their inbox
 *      goes only when every message in it is a reply or expired; their outbox copies go then too.
 *   Everything else (actors, offline or not, and every app a peer announced) is left alone. A
 *   message (or outbox copy) goes only once it is older than the grace period (by its
 *   `timestamp`; an expired message by its deadline), and a presence hash only once its
 *   `last_seen` is. Members are removed by their exact bytes as read (ZREM), so a message that
 *   arrives meanwhile stays; liveness and the signs of an actor are checked again right before an
 *   app's keys are touched.
 * - TTLs: a process's own `status` and `outbox` get LEFTOVER_TTL_S when it shuts down, no other
 *   live process serves its `appId` and it is not an actor's id (`expireProcessKeys`), and lose
 *   it when a process with that `appId` (`claimProcessKeys`) or an actor with that id
 *   (`claimActorKeys`) starts; the CLI's `redactor-cli` inbox and outbox get it at each
 *   `redactor send` (`expireCliKeys`).
 *
 * Message hashes (`message:<id>`) are not gc's business: redactor writes them with a TTL.
 */

import { existsEach, getEach, perKey, type RedisClient, scanAll } from "./cluster.js";
import { jsonObjectOf } from "./envelope.js";
import { AppInUseError } from "./errors.js";
import type { AppKeyKind, Keyspace } from "./keyspace.js";
import {
  type AppStatus,
  HANDLES_FIELD,
  ROLE_FIELD,
  ROLE_SYSTEM,
  readStatus,
  scanStatuses,
} from "./presence.js";

/** The CLI's own app id: the sender of `redactor send` unless `--from` says otherwise. */
export const CLI_APP_ID = "redactor-cli";

/** The throw-away app ids of `redactor ask` and `redactor run` (src/cli/payload.ts, ephemeralAppId). */
const CLI_EPHEMERAL = /^redactor-(ask|run)-/;

/**
 * The lifetime, seconds, given to what a process leaves behind for itself (its `status` and
 * `outbox` at shutdown, the CLI's inbox and outbox): one day, like a message hash's.
 */
export const LEFTOVER_TTL_S = 86_400;

/** The grace period of `planGc` when none is given, ms: one hour. */
export const DEFAULT_GC_GRACE_MS = 3_600_000;

/** Beyond this many members a set is not read whole; gc leaves it (forget can delete it). */
const MAX_MEMBERS_JUDGED = 100_000;

/** Members per ZREM. */
const REMOVE_CHUNK = 500;

/** Whether `app` is one of the CLI's own ids (`redactor-cli`, or an ask's or run's throw-away id). */
export function isCliAppId(app: string): boolean {
  return app === CLI_APP_ID || CLI_EPHEMERAL.test(app);
}

/** Redis' clock, Unix ms (TIME; on a cluster, any node's). */
export async function redisNowMs(redis: RedisClient): Promise<number> {
  const [seconds, micros] = await redis.time();
  return Number(seconds) * 1000 + Math.floor(Number(micros) / 1000);
}

/**
 * The per-app keys that only an actor has: timers (src/timers.ts), persisted state (src/state.ts)
 * and the activation key of a single-activation actor (src/activation.ts). Neither a process's
 * own inbox nor the CLI ever writes them. (Dead letters and scheduled messages are not among
 * them: anyone may send a process's own app id a scheduled message, or one that dies.)
 */
const ACTOR_ONLY_KINDS = ["timerSpecs", "timerDue", "timerLast", "state", "activation"] as const;

/**
 * What shows that `app` is (or was) an actor's, or [] when nothing does: the `handles` field in
 * its presence hash (written only for an actor, src/system.ts startCell, and kept when it
 * leaves) and the keys only an actor has (ACTOR_ONLY_KINDS). An app with any of them is never
 * judged as a process's own app id, whatever its `role` says: the same id may be a system's
 * `appId` and an actor's (examples/demo.ts), or another process may use an actor's id as its
 * `appId`. (`ordering` is no sign: every redactor inbox, a process's own included, has it.)
 */
function actorSigns(
  fields: Record<string, string> | undefined,
  exists: ReadonlyMap<AppKeyKind, boolean>,
): string[] {
  const signs: string[] = [];
  if (fields?.[HANDLES_FIELD] !== undefined) signs.push("its presence hash lists the types it handles");
  for (const kind of ACTOR_ONLY_KINDS) if (exists.get(kind)) signs.push(`it has a ${kind} key`);
  return signs;
}

/** Reads actorSigns of `app` from Redis (one HGETALL and one EXISTS per key, pipelined). */
async function readActorSigns(redis: RedisClient, keys: Keyspace, app: string): Promise<string[]> {
  const kinds = new Map(keys.appKeys(app).map((k) => [k.kind, k.key]));
  const actorKeys = ACTOR_ONLY_KINDS.map((kind) => kinds.get(kind) as string);
  const [fields, exists] = await Promise.all([redis.hgetall(keys.status(app)), existsEach(redis, actorKeys)]);
  return actorSigns(fields, new Map(ACTOR_ONLY_KINDS.map((kind, i) => [kind, exists[i] === true])));
}

/**
 * Whether `app` is (or was) served as an actor (see actorSigns): then its keys never get a TTL
 * and `redactor gc` never judges it as a process's app id.
 */
export async function isActorApp(redis: RedisClient, keys: Keyspace, app: string): Promise<boolean> {
  return (await readActorSigns(redis, keys, app)).length > 0;
}

/** PERSIST of `app`'s `status` and `outbox` (one slot: both are `app`'s keys). */
async function persistOwnKeys(redis: RedisClient, keys: Keyspace, app: string): Promise<void> {
  await perKey(redis, [keys.status(app), keys.outbox(app)], (p, key) => p.persist(key));
}

/**
 * A process with `appId` `app` starts: its `status` and `outbox` lose the TTL an earlier
 * process's shutdown gave them.
 */
export async function claimProcessKeys(redis: RedisClient, keys: Keyspace, app: string): Promise<void> {
  await persistOwnKeys(redis, keys, app);
}

/**
 * An actor with id `app` starts (its `handles` field was sent first, on the same connection):
 * its `status` and `outbox` lose any TTL a process with that `appId` gave them at shutdown. An
 * actor's keys never expire.
 */
export async function claimActorKeys(redis: RedisClient, keys: Keyspace, app: string): Promise<void> {
  await persistOwnKeys(redis, keys, app);
}

/**
 * A process with `appId` `app` shut down and no other live process serves `app`: its `status`
 * and `outbox` expire after `ttlS` seconds unless a process with that `appId` starts again.
 * Nothing is done when `app` is (or was) an actor's (isActorApp): this process's own actor of
 * that id, or another process's. The signs are read again after the EXPIRE and the TTL taken
 * back when one appeared meanwhile; as an actor that starts writes its `handles` before its
 * PERSIST (claimActorKeys), one of the two always wins. Resolves with whether the TTL was set.
 */
export async function expireProcessKeys(
  redis: RedisClient,
  keys: Keyspace,
  app: string,
  ttlS = LEFTOVER_TTL_S,
): Promise<boolean> {
  if (await isActorApp(redis, keys, app)) return false;
  await perKey(redis, [keys.status(app), keys.outbox(app)], (p, key) => p.expire(key, ttlS));
  if (!(await isActorApp(redis, keys, app))) return true;
  await persistOwnKeys(redis, keys, app);
  return false;
}

/**
 * The CLI sent as `app` (default CLI_APP_ID): its inbox (replies nobody reads) and outbox expire
 * after `ttlS` seconds from now. A reply that arrives into no inbox creates one without a TTL:
 * the next send, or `redactor gc`, takes care of it.
 */
export async function expireCliKeys(
  redis: RedisClient,
  keys: Keyspace,
  app = CLI_APP_ID,
  ttlS = LEFTOVER_TTL_S,
): Promise<void> {
  await perKey(redis, [keys.inbox(app), keys.outbox(app)], (p, key) => p.expire(key, ttlS));
}

/** What a member says about itself, read tolerantly (a member that is not JSON says nothing). */
interface MemberFacts {
  id: string | null;
  /** It answers a request: `reply_to` is set, or its id is a reply's (`reply_…`, `error_…`). */
  reply: boolean;
  /** Its `timestamp`, ms. */
  atMs: number | null;
  /** `timestamp + timeout`, ms, or null without a timeout. */
  deadlineMs: number | null;
}

/** Adds the removal of `copies` (outbox members) of `app` to `actions`, when there are any. */
function pushOutboxAction(
  actions: GcAction[],
  app: string,
  keys: Keyspace,
  copies: string[],
  reason: string,
): void {
  if (copies.length === 0) return;
  actions.push({
    app,
    kind: "outbox",
    key: keys.outbox(app),
    op: "remove",
    members: copies,
    count: copies.length,
    reason,
  });
}

/** Reads what gc needs from a member; the member itself is never re-encoded. */
function factsOf(member: string): MemberFacts {
  // Not JSON: nothing is known, so nothing is removed.
  const data = jsonObjectOf(member);
  const id = typeof data.id === "string" ? data.id : null;
  const ts = typeof data.timestamp === "number" && Number.isFinite(data.timestamp) ? data.timestamp : null;
  const timeout = typeof data.timeout === "number" && Number.isFinite(data.timeout) ? data.timeout : null;
  return {
    id,
    reply:
      (typeof data.reply_to === "string" && data.reply_to !== "") ||
      (id !== null && (id.startsWith("reply_") || id.startsWith("error_"))),
    atMs: ts === null ? null : ts * 1000,
    deadlineMs: ts === null || timeout === null ? null : (ts + timeout) * 1000,
  };
}

/** Why a live process stands behind `app`, or null when none does. */
async function inUse(redis: RedisClient, keys: Keyspace, app: string): Promise<string | null> {
  const presence = await readStatus(redis, keys, app);
  const owner = await redis.get(keys.activation(app));
  const ownerAlive = owner !== null && owner !== "" && (await redis.exists(keys.heartbeat(owner))) === 1;
  return usage(presence, ownerAlive ? owner : null);
}

function usage(presence: AppStatus | null, liveOwner: string | null): string | null {
  if (presence && presence.nodes.length > 0) return `served by ${presence.nodes.join(", ")}`;
  if (presence?.online) {
    return presence.heartbeat === "none" ? "its presence hash says online (a peer's)" : "online";
  }
  if (liveOwner !== null) return `owned by the live process ${liveOwner}`;
  return null;
}

// ---------------------------------------------------------------------------------------------
// forget

/** What `forget` would delete for one app. */
export interface ForgetPlan {
  app: string;
  /** Why the app is in use (forget refuses unless forced), or null. */
  inUse: string | null;
  /** The app's keys that exist. */
  keys: { kind: AppKeyKind; key: string }[];
  /**
   * The message hashes of messages sent to the app: `message:{app}:*` found by SCAN in the
   * cluster layout; in the peers' layout the hashes of the messages in its queues whose
   * `recipient` is the app.
   */
  messageHashes: string[];
  /** The app has an entry in the `redactor:scheduled` index. */
  indexEntry: boolean;
}

/** Message ids in an app's inbox, processing set, scheduled set and dead letters. */
async function idsInQueues(redis: RedisClient, keys: Keyspace, app: string): Promise<string[]> {
  const [inbox, processing, scheduled, dead] = await Promise.all([
    redis.zrange(keys.inbox(app), 0, -1),
    redis.zrange(keys.processing(app), 0, -1),
    redis.zrange(keys.scheduled(app), 0, -1),
    redis.zrange(keys.dead(app), 0, -1),
  ]);
  const ids = new Set<string>(scheduled);
  for (const member of [...inbox, ...processing]) {
    const { id } = factsOf(member);
    if (id !== null) ids.add(id);
  }
  for (const entry of dead) {
    try {
      const data = JSON.parse(entry) as { id?: unknown };
      if (typeof data.id === "string") ids.add(data.id);
    } catch {
      // Not one of ours.
    }
  }
  return [...ids];
}

/** Reads what `forget` would delete for `app`; deletes nothing. */
export async function planForget(redis: RedisClient, keys: Keyspace, app: string): Promise<ForgetPlan> {
  keys.checkApp(app);
  const all = keys.appKeys(app);
  const exists = await existsEach(
    redis,
    all.map((k) => k.key),
  );
  const pattern = keys.appMessagePattern(app);
  let messageHashes: string[];
  if (pattern !== null) {
    messageHashes = await scanAll(redis, pattern);
  } else {
    const candidates = (await idsInQueues(redis, keys, app)).map((id) => keys.message(app, id));
    const recipients = await perKey(redis, candidates, (p, key) => p.hget(key, "recipient"));
    messageHashes = candidates.filter((_, i) => recipients[i]?.[1] === app);
  }
  const [index, reason] = await Promise.all([
    redis.zscore(keys.scheduledIndex(), app),
    inUse(redis, keys, app),
  ]);
  return {
    app,
    inUse: reason,
    keys: all.filter((_, i) => exists[i]),
    messageHashes,
    indexEntry: index !== null,
  };
}

/** What `forget` deleted. */
export interface ForgetResult {
  /** Keys deleted (the app's keys and message hashes that still existed). */
  deleted: number;
  /** The `redactor:scheduled` entry was removed. */
  indexEntry: boolean;
}

/**
 * Deletes everything `plan` lists: the app's keys, its message hashes, its index entry.
 * Liveness is checked again first.
 * @throws AppInUseError when a live process serves or owns the app, or a peer says it is online,
 *   unless `force`.
 */
export async function executeForget(
  redis: RedisClient,
  keys: Keyspace,
  plan: ForgetPlan,
  options: { force?: boolean } = {},
): Promise<ForgetResult> {
  if (!options.force) {
    const reason = plan.inUse ?? (await inUse(redis, keys, plan.app));
    if (reason !== null) throw new AppInUseError(plan.app, reason);
  }
  // The scheduled set before the index entry: the index must not lose an app that still has
  // scheduled messages (src/scheduler.ts); an entry left for an app with none is harmless.
  const targets = [...plan.keys.map((k) => k.key), ...plan.messageHashes];
  const results = await perKey(redis, targets, (p, key) => p.unlink(key));
  let deleted = 0;
  for (const [err, n] of results) {
    if (err) throw err;
    deleted += Number(n);
  }
  const removed = await redis.zrem(keys.scheduledIndex(), plan.app);
  return { deleted, indexEntry: removed > 0 };
}

// ---------------------------------------------------------------------------------------------
// gc

/** One thing gc removes. */
export interface GcAction {
  app: string;
  kind: AppKeyKind;
  key: string;
  /** `delete`: the whole key; `remove`: the `members` listed (exact bytes as read). */
  op: "delete" | "remove";
  members: string[];
  /** Members removed (`remove`), or 1 (`delete`). */
  count: number;
  reason: string;
}

/** An app gc looked at and left (partly) alone, and why. */
export interface GcKept {
  app: string;
  reason: string;
}

/** What gc would do. */
export interface GcPlan {
  /** Redis' time when planned, ms. */
  nowMs: number;
  graceMs: number;
  actions: GcAction[];
  kept: GcKept[];
}

/** Options of `planGc`. */
export interface GcOptions {
  /**
   * How old (ms) a leftover must be before it goes: a message by its `timestamp` (an expired
   * one by its deadline), an outbox copy by its score, a presence hash by its `last_seen`.
   * @default 3600000 (DEFAULT_GC_GRACE_MS, one hour)
   */
  graceMs?: number;
}

/** The members of an outbox read WITHSCORES (score = Unix seconds) older than `cutoffMs`. */
function oldCopies(flat: readonly string[], cutoffMs: number): string[] {
  const out: string[] = [];
  for (let i = 0; i + 1 < flat.length; i += 2) {
    if (Number(flat[i + 1]) * 1000 < cutoffMs) out.push(flat[i] as string);
  }
  return out;
}

interface AppSnapshot {
  app: string;
  presence: AppStatus | null;
  exists: Map<AppKeyKind, boolean>;
  inbox: string[];
  processing: string[];
  outbox: string[];
  liveOwner: string | null;
  tooLarge: boolean;
}

async function snapshot(redis: RedisClient, keys: Keyspace, app: string, presence: AppStatus | null) {
  const all = keys.appKeys(app);
  const exists = await existsEach(
    redis,
    all.map((k) => k.key),
  );
  const sizes = await Promise.all([
    redis.zcard(keys.inbox(app)),
    redis.zcard(keys.processing(app)),
    redis.zcard(keys.outbox(app)),
  ]);
  const tooLarge = sizes.some((n) => n > MAX_MEMBERS_JUDGED);
  const [inbox, processing, outbox, owner] = await Promise.all([
    tooLarge ? [] : redis.zrange(keys.inbox(app), 0, -1),
    tooLarge ? [] : redis.zrange(keys.processing(app), 0, -1),
    tooLarge ? [] : redis.zrange(keys.outbox(app), 0, -1, "WITHSCORES"),
    redis.get(keys.activation(app)),
  ]);
  const [ownerBeat] = owner ? await getEach(redis, [keys.heartbeat(owner)]) : [null];
  const snap: AppSnapshot = {
    app,
    presence,
    exists: new Map(all.map((k, i) => [k.kind, exists[i] === true])),
    inbox,
    processing,
    outbox,
    liveOwner: owner && ownerBeat != null ? owner : null,
    tooLarge,
  };
  return snap;
}

/** The gc actions for an app redactor made for a process (a system app or a CLI id). */
function processLeftovers(snap: AppSnapshot, keys: Keyspace, nowMs: number, graceMs: number, cli: boolean) {
  const { app } = snap;
  const cutoff = nowMs - graceMs;
  const actions: GcAction[] = [];
  const kept: string[] = [];
  const owner = cli ? "the CLI" : "a process that is gone";
  const judge = (member: string): boolean => {
    const f = factsOf(member);
    if (f.deadlineMs !== null && f.deadlineMs < cutoff) return true;
    if (f.atMs === null || f.atMs >= cutoff) return false;
    return cli || f.reply;
  };
  for (const kind of ["inbox", "processing"] as const) {
    const members = snap[kind];
    const gone = members.filter(judge);
    if (gone.length > 0) {
      actions.push({
        app,
        kind,
        key: keys[kind](app),
        op: "remove",
        members: gone,
        count: gone.length,
        reason: cli
          ? `messages to ${owner} older than the grace period: nobody reads them`
          : `replies nobody waits for and expired messages, to ${owner}`,
      });
    }
    if (gone.length < members.length) kept.push(`${members.length - gone.length} in its ${kind}`);
  }
  const copies = oldCopies(snap.outbox, cutoff);
  pushOutboxAction(
    actions,
    app,
    keys,
    copies,
    `monitoring copies of what ${owner} sent, older than the grace period`,
  );
  const copiesLeft = snap.outbox.length / 2 - copies.length;
  if (copiesLeft > 0) kept.push(`${copiesLeft} recent outbox copies`);
  for (const kind of ["dead", "scheduled", "timerSpecs", "timerDue", "timerLast", "state"] as const) {
    if (snap.exists.get(kind)) kept.push(`its ${kind} key`);
  }
  const lastSeen = Number(snap.presence?.fields.last_seen);
  const seenRecently = Number.isFinite(lastSeen) && lastSeen * 1000 >= cutoff;
  if (kept.length === 0 && !seenRecently) {
    // (An activation key is an actor's: planGc leaves such an app alone.)
    if (snap.exists.get("status")) {
      actions.push({
        app,
        kind: "status",
        key: keys.status(app),
        op: "delete",
        members: [],
        count: 1,
        reason: `nothing else is left of ${owner}`,
      });
    }
  } else if (snap.exists.get("status")) {
    kept.push(seenRecently ? "its presence hash (seen within the grace period)" : "its presence hash");
  }
  return { actions, kept };
}

/** The gc actions for an inbox nobody ever announced (no presence hash at all). */
function orphanLeftovers(snap: AppSnapshot, keys: Keyspace, nowMs: number, graceMs: number) {
  const { app } = snap;
  const cutoff = nowMs - graceMs;
  const actions: GcAction[] = [];
  const others = (
    ["processing", "dead", "scheduled", "timerSpecs", "timerDue", "timerLast", "state", "activation"] as const
  ).filter((kind) => snap.exists.get(kind));
  if (others.length > 0) return { actions, kept: [] as string[] };
  const removable = (member: string): boolean => {
    const f = factsOf(member);
    if (f.deadlineMs !== null) return f.deadlineMs < cutoff;
    return f.reply && f.atMs !== null && f.atMs < cutoff;
  };
  const gone = snap.inbox.filter(removable);
  if (gone.length < snap.inbox.length) {
    return {
      actions,
      kept:
        gone.length > 0
          ? [
              `${snap.inbox.length - gone.length} of ${snap.inbox.length} inbox messages are neither old replies nor expired`,
            ]
          : [],
    };
  }
  if (gone.length > 0) {
    actions.push({
      app,
      kind: "inbox",
      key: keys.inbox(app),
      op: "remove",
      members: gone,
      count: gone.length,
      reason:
        "an inbox nobody announced, holding only replies and expired messages older than the grace period",
    });
  }
  pushOutboxAction(
    actions,
    app,
    keys,
    oldCopies(snap.outbox, cutoff),
    "monitoring copies of a sender that never announced itself, older than the grace period",
  );
  return { actions, kept: [] as string[] };
}

/**
 * Finds what gc would remove (see the module's header for the rules); removes nothing. Apps are
 * found by SCAN on every master (status:* and queue:*), never KEYS.
 */
export async function planGc(redis: RedisClient, keys: Keyspace, options: GcOptions = {}): Promise<GcPlan> {
  const graceMs = options.graceMs ?? DEFAULT_GC_GRACE_MS;
  const nowMs = await redisNowMs(redis);
  const statuses = new Map((await scanStatuses(redis, keys)).map((s) => [s.app, s]));
  const queued = new Set<string>();
  for (const key of await scanAll(redis, keys.queuePattern())) {
    const found = keys.appFromQueueKey(key);
    if (found) queued.add(found.app);
  }
  const candidates: { app: string; kind: "process" | "cli" | "orphan" }[] = [];
  for (const app of new Set([...statuses.keys(), ...queued])) {
    const presence = statuses.get(app) ?? null;
    if (isCliAppId(app)) candidates.push({ app, kind: "cli" });
    else if (presence?.fields[ROLE_FIELD] === ROLE_SYSTEM) candidates.push({ app, kind: "process" });
    else if (presence === null) candidates.push({ app, kind: "orphan" });
  }
  candidates.sort((a, b) => (a.app < b.app ? -1 : a.app > b.app ? 1 : 0));
  const actions: GcAction[] = [];
  const kept: GcKept[] = [];
  for (const { app, kind } of candidates) {
    const presence = statuses.get(app) ?? null;
    const snap = await snapshot(redis, keys, app, presence);
    const busy = usage(presence, snap.liveOwner);
    if (busy !== null) {
      if (kind !== "orphan") kept.push({ app, reason: `in use: ${busy}` });
      continue;
    }
    // An id that is (or was) an actor's is an actor, whatever its `role` says (a system whose
    // appId is also an actor's id; another process that used an actor's id as its appId).
    const signs = kind === "orphan" ? [] : actorSigns(presence?.fields, snap.exists);
    if (signs.length > 0) {
      kept.push({ app, reason: `an actor (${signs.join(", ")}): gc leaves actors alone` });
      continue;
    }
    if (snap.tooLarge) {
      kept.push({
        app,
        reason: `a set holds over ${MAX_MEMBERS_JUDGED} members; look at it, or redactor forget it`,
      });
      continue;
    }
    const found =
      kind === "orphan"
        ? orphanLeftovers(snap, keys, nowMs, graceMs)
        : processLeftovers(snap, keys, nowMs, graceMs, kind === "cli");
    actions.push(...found.actions);
    if (found.kept.length > 0) kept.push({ app, reason: `kept ${found.kept.join(", ")}` });
  }
  return { nowMs, graceMs, actions, kept };
}

/** What `executeGc` did. */
export interface GcResult {
  /** The actions carried out, with `count` = what was really removed. */
  done: GcAction[];
  /** Apps skipped because they came back to life since the plan, or changed under it. */
  skipped: GcKept[];
}

/**
 * Carries out `plan`, app by app: each app's liveness is checked again first (an app that came
 * online is skipped), members are removed by their exact bytes, and an app's presence hash and
 * activation key are deleted only if its inbox and processing set are still empty then.
 */
export async function executeGc(redis: RedisClient, keys: Keyspace, plan: GcPlan): Promise<GcResult> {
  const byApp = new Map<string, GcAction[]>();
  for (const action of plan.actions) {
    const list = byApp.get(action.app) ?? [];
    list.push(action);
    byApp.set(action.app, list);
  }
  const done: GcAction[] = [];
  const skipped: GcKept[] = [];
  for (const [app, actions] of byApp) {
    const busy = await inUse(redis, keys, app);
    if (busy !== null) {
      skipped.push({ app, reason: `in use now: ${busy}` });
      continue;
    }
    // An actor with that id may have been served since the plan (and stopped again).
    const signs = await readActorSigns(redis, keys, app);
    if (signs.length > 0) {
      skipped.push({ app, reason: `an actor now (${signs.join(", ")})` });
      continue;
    }
    for (const action of actions.filter((a) => a.op === "remove")) {
      let removed = 0;
      for (let i = 0; i < action.members.length; i += REMOVE_CHUNK) {
        removed += await redis.zrem(action.key, ...action.members.slice(i, i + REMOVE_CHUNK));
      }
      done.push({ ...action, count: removed });
    }
    const deletes = actions.filter((a) => a.op === "delete");
    if (deletes.length === 0) continue;
    const [inbox, processing] = await Promise.all([
      redis.zcard(keys.inbox(app)),
      redis.zcard(keys.processing(app)),
    ]);
    if (inbox + processing > 0) {
      skipped.push({ app, reason: "messages arrived meanwhile; its presence hash stays" });
      continue;
    }
    for (const action of deletes) {
      done.push({ ...action, count: await redis.unlink(action.key) });
    }
  }
  return { done, skipped };
}
