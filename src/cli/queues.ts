/**
 * Read-side views of the keyspace for the CLI: apps, inboxes in the order they will run, leases,
 * dead letters, and where a given message sits. Everything here only reads; the commands that
 * change state (send, dlq retry/purge) write for themselves. Each function works on one server
 * and on a Redis Cluster alike: SCANs go over every master (src/cluster.ts), and reads that touch
 * many keys are sent as separate commands (ioredis sends them together) rather than as one
 * pipeline, which on a cluster would have to stay on one node.
 */
import { type RedisClient, scanKeys } from "../cluster.js";
import { decodeEnvelope, jsonObjectOf } from "../envelope.js";
import type { Keyspace } from "../keyspace.js";
import { type AppStatus, ORDERING_CANONICAL, ORDERING_FIELD, readStatus, scanStatuses } from "../presence.js";
import { canonicalScore, SCORE_BASE } from "../priority.js";

/** Highest canonical score (2^53 - 1); anything above or below the band was scored by someone else. */
const SCORE_TOP = 2 ** 53 - 1;

/** What can be read from one message member, valid or not. */
export interface MessageSummary {
  id: string | null;
  sender: string | null;
  recipient: string | null;
  type: string | null;
  /** As written; not necessarily a valid priority when `problem` is set. */
  priority: unknown;
  /** Unix seconds. */
  timestamp: number | null;
  /** Seconds after `timestamp` past which it must not start. */
  timeout: number | null;
  replyTo: string | null;
  payload: unknown;
  /** Why the member is not a valid wire message (the runtime will dead-letter it), else null. */
  problem: string | null;
}

function textOrNull(value: unknown): string | null {
  if (typeof value === "string") return value;
  if (typeof value === "number" && Number.isFinite(value)) return String(value);
  return null;
}

function numberOrNull(value: unknown): number | null {
  return typeof value === "number" && Number.isFinite(value) ? value : null;
}

/** Reads a member as the runtime would, keeping what it can when the member is not valid. */
export function summarize(member: string): MessageSummary {
  let problem: string | null = null;
  try {
    const env = decodeEnvelope(member);
    return {
      id: env.id,
      sender: env.sender,
      recipient: env.recipient,
      type: env.message_type,
      priority: env.priority,
      timestamp: env.timestamp,
      timeout: env.timeout,
      replyTo: env.reply_to,
      payload: env.payload,
      problem: null,
    };
  } catch (err) {
    problem = (err as Error).message;
  }
  // Not JSON at all: every field stays null and `problem` says so.
  const data = jsonObjectOf(member);
  return {
    id: textOrNull(data.id),
    sender: textOrNull(data.sender),
    recipient: textOrNull(data.recipient),
    type: textOrNull(data.message_type),
    priority: data.priority,
    timestamp: numberOrNull(data.timestamp),
    timeout: numberOrNull(data.timeout),
    replyTo: textOrNull(data.reply_to),
    payload: data.payload,
    problem,
  };
}

/** The deadline of a message, ms, or null when it has none. */
export function deadlineMs(message: MessageSummary): number | null {
  if (message.timeout === null || message.timestamp === null) return null;
  return (message.timestamp + message.timeout) * 1000;
}

/** Pairs `[member, score, member, score …]` from a WITHSCORES reply. */
function pairs(flat: readonly string[]): { member: string; score: number }[] {
  const out: { member: string; score: number }[] = [];
  for (let i = 0; i + 1 < flat.length; i += 2)
    out.push({ member: flat[i] as string, score: Number(flat[i + 1]) });
  return out;
}

/** Whether an inbox is ordered by redactor's canonical score or by the peers' formula. */
export type InboxOrdering = "canonical" | "peer";

/** The ordering an app's inbox follows, from its presence hash. */
export function orderingOf(status: AppStatus | null): InboxOrdering {
  return status?.fields[ORDERING_FIELD] === ORDERING_CANONICAL ? "canonical" : "peer";
}

/** One inbox member, where it stands in the run order. */
export interface InboxEntry {
  /** 1 runs next; null for a member the runtime will refuse (see `message.problem`). */
  position: number | null;
  member: string;
  /** The score as stored. */
  score: number;
  /** Whether the stored score is in redactor's canonical band or was written by a peer. */
  scoreKind: "canonical" | "foreign";
  message: MessageSummary;
}

/** The canonical score the claim script gives a foreign-scored member (src/lua/claim.lua). */
function rescore(message: MessageSummary, nowUs: number): number {
  const raw = typeof message.priority === "string" ? Number(message.priority) : message.priority;
  let p = typeof raw === "number" && Number.isFinite(raw) ? Math.floor(raw) : 2;
  p = Math.min(4, Math.max(1, p));
  const us = message.timestamp === null ? nowUs : Math.floor(message.timestamp * 1e6 + 0.5);
  return canonicalScore(p as 1 | 2 | 3 | 4, us);
}

function inBand(score: number): boolean {
  return score >= SCORE_BASE && score <= SCORE_TOP;
}

/** How many foreign-scored members are read to place them; the claim fixes 500 per call. */
const FOREIGN_READ = 1000;

/** Members of a redactor inbox that a peer scored (outside the canonical band), up to FOREIGN_READ. */
async function foreignMembers(redis: RedisClient, key: string): Promise<{ member: string; score: number }[]> {
  const [below, above] = await Promise.all([
    redis.zrangebyscore(key, "-inf", `(${SCORE_BASE}`, "WITHSCORES", "LIMIT", 0, FOREIGN_READ),
    redis.zrangebyscore(key, `(${SCORE_TOP}`, "+inf", "WITHSCORES", "LIMIT", 0, FOREIGN_READ),
  ]);
  return [...pairs(below), ...pairs(above)];
}

/**
 * Where one inbox member stands in the run order, 1 = next, as `readInbox` would number it; null
 * for a member the claim will refuse.
 */
export async function runPosition(
  redis: RedisClient,
  key: string,
  member: string,
  score: number,
  ordering: InboxOrdering,
): Promise<number | null> {
  if (ordering === "peer") {
    const rank = await redis.zrevrank(key, member);
    return rank === null ? null : rank + 1;
  }
  const message = summarize(member);
  if (message.id === null) return null;
  const nowUs = Date.now() * 1000;
  const effective = inBand(score) ? score : rescore(message, nowUs);
  const [ahead, foreign] = await Promise.all([
    redis.zcount(key, `(${effective}`, String(SCORE_TOP)),
    foreignMembers(redis, key),
  ]);
  const foreignAhead = foreign.filter((f) => {
    if (f.member === member) return false;
    const m = summarize(f.member);
    return m.id !== null && rescore(m, nowUs) > effective;
  }).length;
  return ahead + foreignAhead + 1;
}

/**
 * The first `limit` members of an inbox in the order they will run. A redactor inbox runs by
 * canonical score, and members a peer added with `priority * 1000 + timestamp` are re-scored
 * from their own priority and timestamp before the next claim, so they are placed where that
 * re-score will put them. A peer's inbox runs by raw score (its ZPOPMAX), newest first within
 * a priority: that order is shown as it is.
 */
export async function readInbox(
  redis: RedisClient,
  keys: Keyspace,
  app: string,
  ordering: InboxOrdering,
  limit: number,
): Promise<{ total: number; entries: InboxEntry[] }> {
  const key = keys.inbox(app);
  const total = await redis.zcard(key);
  if (total === 0) return { total, entries: [] };
  const entry = (member: string, score: number): InboxEntry => ({
    position: null,
    member,
    score,
    scoreKind: inBand(score) ? "canonical" : "foreign",
    message: summarize(member),
  });
  if (ordering === "peer") {
    const rows = pairs(await redis.zrevrange(key, 0, limit - 1, "WITHSCORES"));
    return { total, entries: rows.map((r, i) => ({ ...entry(r.member, r.score), position: i + 1 })) };
  }
  const [inBandRows, foreign] = await Promise.all([
    redis.zrevrangebyscore(key, String(SCORE_TOP), String(SCORE_BASE), "WITHSCORES", "LIMIT", 0, limit),
    foreignMembers(redis, key),
  ]);
  const nowUs = Date.now() * 1000;
  const valid: { entry: InboxEntry; effective: number }[] = [];
  const refused: InboxEntry[] = [];
  for (const r of [...pairs(inBandRows), ...foreign]) {
    const e = entry(r.member, r.score);
    // The claim refuses members that are not JSON objects with an id; others are handed out.
    if (e.message.id === null) refused.push(e);
    else
      valid.push({ entry: e, effective: e.scoreKind === "canonical" ? r.score : rescore(e.message, nowUs) });
  }
  valid.sort((a, b) => b.effective - a.effective);
  const ordered = valid.slice(0, limit).map((v, i) => ({ ...v.entry, position: i + 1 }));
  return { total, entries: [...ordered, ...refused].slice(0, Math.max(limit, ordered.length)) };
}

/** One claimed message under its lease. */
export interface InFlightEntry {
  member: string;
  /** When the lease runs out and the message goes back to the inbox, ms. */
  leaseDeadlineMs: number;
  message: MessageSummary;
  /** From `message:<id>`: how many times it was claimed. */
  attempts: number | null;
  /** From `message:<id>`: the lease token, `<node>/<incarnation>`. */
  lease: string | null;
  status: string | null;
}

/** The claimed messages of an app, soonest lease deadline first. */
export async function readInFlight(
  redis: RedisClient,
  keys: Keyspace,
  app: string,
  limit: number,
): Promise<{ total: number; entries: InFlightEntry[] }> {
  const key = keys.processing(app);
  const [total, flat] = await Promise.all([redis.zcard(key), redis.zrange(key, 0, limit - 1, "WITHSCORES")]);
  const rows = pairs(flat).map((r) => ({ ...r, message: summarize(r.member) }));
  // The hash of a message sent to `app` (message:{app}:<id> in the cluster layout).
  const hashes = await Promise.all(
    rows.map((r) => redis.hmget(keys.message(app, r.message.id ?? ""), "status", "attempts", "lease")),
  );
  return {
    total,
    entries: rows.map((r, i) => {
      const [status, attempts, lease] = hashes[i] ?? [];
      return {
        member: r.member,
        leaseDeadlineMs: r.score,
        message: r.message,
        attempts: attempts == null ? null : Number(attempts),
        lease: lease ?? null,
        status: status ?? null,
      };
    }),
  };
}

/** One entry of `queue:<app>:dead`, as src/lua/includes/deadletter.lua writes it. */
export interface DeadEntry {
  /** The sorted-set member exactly as stored (needed to remove it). */
  raw: string;
  /** When it died, ms. */
  atMs: number;
  id: string | null;
  /** `handler-error`, `unknown-type`, `invalid-payload`, `malformed`, `oversize` … */
  reason: string;
  error: string | null;
  attempts: number | null;
  /** The original inbox member as text (invalid UTF-8 bytes shown as U+FFFD). */
  member: string | null;
  /**
   * The original inbox member byte for byte: a member that is not UTF-8 is kept hex-encoded
   * (`message_hex`) in the entry, since JSON text cannot hold it.
   */
  memberBytes: Buffer | null;
  message: MessageSummary | null;
}

/** Parses one dead-letter member. */
export function parseDeadEntry(raw: string, score: number): DeadEntry {
  let data: Record<string, unknown> = {};
  try {
    const parsed: unknown = JSON.parse(raw);
    if (parsed && typeof parsed === "object") data = parsed as Record<string, unknown>;
  } catch {
    // Someone else wrote to the set; show what we can.
  }
  const memberBytes =
    typeof data.message === "string"
      ? Buffer.from(data.message)
      : typeof data.message_hex === "string"
        ? Buffer.from(data.message_hex, "hex")
        : null;
  const member = memberBytes === null ? null : memberBytes.toString("utf8");
  const message = member === null ? null : summarize(member);
  return {
    raw,
    atMs: typeof data.at === "number" ? data.at : score,
    id: textOrNull(data.id) ?? message?.id ?? null,
    reason: textOrNull(data.reason) ?? "unknown",
    error: textOrNull(data.error),
    attempts: numberOrNull(data.attempts),
    member,
    memberBytes,
    message,
  };
}

/** Dead letters of an app, newest first (or oldest first). */
export async function readDead(
  redis: RedisClient,
  keys: Keyspace,
  app: string,
  limit: number,
  order: "newest" | "oldest" = "newest",
): Promise<{ total: number; entries: DeadEntry[] }> {
  const key = keys.dead(app);
  const [total, flat] = await Promise.all([
    redis.zcard(key),
    order === "newest"
      ? redis.zrevrange(key, 0, limit - 1, "WITHSCORES")
      : redis.zrange(key, 0, limit - 1, "WITHSCORES"),
  ]);
  return { total, entries: pairs(flat).map((r) => parseDeadEntry(r.member, r.score)) };
}

/** One app as `redactor ls` shows it. */
export interface AppRow {
  app: string;
  /** `online`, `offline`, `stale` (said online, heartbeat gone), a peer's own word, or `-`. */
  state: string;
  /** `redactor` when its inbox uses the canonical ordering, `peer` otherwise, `-` without presence. */
  kind: "redactor" | "peer" | "-";
  /** Unix seconds of the last heartbeat or `last_seen`. */
  lastSeen: number | null;
  inbox: number;
  inFlight: number;
  dead: number;
  presence: AppStatus | null;
}

/**
 * The live redactor processes that host an app, for people: their node ids
 * (`<appId>@<host>:<pid>:<n>`), `-` when none (a peer, or offline).
 */
export function hostsOf(row: AppRow): string {
  const nodes = row.presence?.nodes ?? [];
  return nodes.length === 0 ? "-" : nodes.join(", ");
}

/** The presence word shown for an app. */
export function stateOf(status: AppStatus | null): string {
  if (!status) return "-";
  if (status.online) return "online";
  if (status.status === "online" && status.heartbeat === "stale") return "stale";
  return status.status ?? "?";
}

/** App ids that have an inbox, leases or dead letters (SCAN, never KEYS, on every master of a cluster). */
export async function scanQueueApps(redis: RedisClient, keys: Keyspace): Promise<Set<string>> {
  const apps = new Set<string>();
  for await (const batch of scanKeys(redis, keys.queuePattern())) {
    for (const key of batch) {
      const found = keys.appFromQueueKey(key);
      // An app that only sent (an outbox alone) has nothing to show here.
      if (found && found.queue !== "outbox") apps.add(found.app);
    }
  }
  return apps;
}

/**
 * When the app was last seen. AppStatus.lastSeen prefers the process heartbeat, which stays
 * fresh after one actor of a live process stopped; for an app that is not online, the hash's own
 * `last_seen` (written when it went offline) is the truthful time.
 */
function lastSeenOf(presence: AppStatus | null): number | null {
  if (!presence) return null;
  if (presence.online) return presence.lastSeen;
  const own = Number(presence.fields.last_seen);
  return presence.fields.last_seen !== undefined && Number.isFinite(own) ? own : presence.lastSeen;
}

function rowOf(app: string, presence: AppStatus | null, counts: readonly number[]): AppRow {
  return {
    app,
    state: stateOf(presence),
    kind: presence ? (orderingOf(presence) === "canonical" ? "redactor" : "peer") : "-",
    lastSeen: lastSeenOf(presence),
    inbox: counts[0] ?? 0,
    inFlight: counts[1] ?? 0,
    dead: counts[2] ?? 0,
    presence,
  };
}

async function queueCounts(redis: RedisClient, keys: Keyspace, apps: readonly string[]): Promise<number[][]> {
  // One ZCARD per key, sent together: the apps' keys are in as many slots as there are apps.
  return Promise.all(
    apps.map((app) =>
      Promise.all([
        redis.zcard(keys.inbox(app)),
        redis.zcard(keys.processing(app)),
        redis.zcard(keys.dead(app)),
      ]),
    ),
  );
}

/** Every app that has a presence hash or a queue, sorted by id. */
export async function listApps(redis: RedisClient, keys: Keyspace): Promise<AppRow[]> {
  const [statuses, queueApps] = await Promise.all([scanStatuses(redis, keys), scanQueueApps(redis, keys)]);
  const byApp = new Map(statuses.map((s) => [s.app, s]));
  const apps = [...new Set([...byApp.keys(), ...queueApps])].sort();
  const counts = await queueCounts(redis, keys, apps);
  return apps.map((app, i) => rowOf(app, byApp.get(app) ?? null, counts[i] ?? []));
}

/** One app's row, or null when it has neither presence nor queues. */
export async function readApp(redis: RedisClient, keys: Keyspace, app: string): Promise<AppRow | null> {
  const [presence, counts] = await Promise.all([
    readStatus(redis, keys, app),
    queueCounts(redis, keys, [app]),
  ]);
  const row = rowOf(app, presence, counts[0] ?? []);
  if (presence || row.inbox + row.inFlight + row.dead > 0) return row;
  // Only scheduled messages (src/scheduler.ts): an app all the same.
  return (await redis.zcard(keys.scheduled(app))) > 0 ? row : null;
}

/** A ZSCAN MATCH pattern that finds members containing `id`, even when JSON escaped some of it. */
export function idPattern(id: string): string {
  return `*${[...id].map((c) => (/[A-Za-z0-9_.:-]/.test(c) ? c : "*")).join("")}*`;
}

/** Members of a sorted set whose text contains `id` (candidates; callers check the parsed id). */
export async function scanFor(
  redis: RedisClient,
  key: string,
  id: string,
): Promise<{ member: string; score: number }[]> {
  const found = new Map<string, number>();
  let cursor = "0";
  do {
    const [next, flat] = await redis.zscan(key, cursor, "MATCH", idPattern(id), "COUNT", 1000);
    cursor = next;
    for (const r of pairs(flat)) found.set(r.member, r.score);
  } while (cursor !== "0");
  return [...found].map(([member, score]) => ({ member, score }));
}

/** Where a copy of a message was found. */
export interface Sighting {
  where: "inbox" | "in-flight" | "dead" | "outbox";
  app: string;
  score: number;
  member: string;
  /** In an inbox: its place in the run order, 1 = next. */
  rank?: number;
  /** For a dead letter, the entry. */
  dead?: DeadEntry;
}

/**
 * Every copy of message `id` in the inboxes, lease sets and dead letters of `apps`, and in the
 * outbox of `sender`.
 */
export async function locateMessage(
  redis: RedisClient,
  keys: Keyspace,
  id: string,
  apps: readonly string[],
  sender: string | null,
): Promise<Sighting[]> {
  const sightings: Sighting[] = [];
  for (const app of apps) {
    const [inbox, processing, dead] = await Promise.all([
      scanFor(redis, keys.inbox(app), id),
      scanFor(redis, keys.processing(app), id),
      scanFor(redis, keys.dead(app), id),
    ]);
    for (const r of inbox) {
      if (summarize(r.member).id !== id) continue;
      const ordering = orderingOf(await readStatus(redis, keys, app));
      const position = await runPosition(redis, keys.inbox(app), r.member, r.score, ordering);
      sightings.push({ where: "inbox", app, ...r, ...(position === null ? {} : { rank: position }) });
    }
    for (const r of processing) {
      if (summarize(r.member).id === id) sightings.push({ where: "in-flight", app, ...r });
    }
    for (const r of dead) {
      const entry = parseDeadEntry(r.member, r.score);
      if (entry.id === id) sightings.push({ where: "dead", app, ...r, dead: entry });
    }
  }
  if (sender) {
    for (const r of await scanFor(redis, keys.outbox(sender), id)) {
      if (summarize(r.member).id === id) sightings.push({ where: "outbox", app: sender, ...r });
    }
  }
  return sightings;
}
