/**
 * The read model of the operations tools (the dashboard, `redactor message`): the apps with their
 * queue sizes and the age of their oldest waiting message, and one message's whole lifecycle
 * (its hash, where it sits now, its reply, its dead-letter entries, a timeline). It builds on the
 * CLI's read-side views (src/cli/queues.ts) and only reads. SCAN, never KEYS; on a cluster every
 * read that touches many keys is sent as separate commands, each in one slot.
 */
import {
  type AppRow,
  type DeadEntry,
  deadlineMs,
  listApps,
  locateMessage,
  type MessageSummary,
  scanQueueApps,
  summarize,
} from "./cli/queues.js";
import { type RedisClient, scanAll } from "./cluster.js";
import { REPLY_ID_PREFIX } from "./envelope.js";
import { ERROR_REPLY_PREFIX } from "./error-replies.js";
import type { Keyspace } from "./keyspace.js";
import { SCORE_BAND, SCORE_BASE } from "./priority.js";

/** Highest canonical score (2^53 - 1). */
const SCORE_TOP = 2 ** 53 - 1;
/** How many foreign-scored members (a peer's ZADD) are read to find the oldest. */
const FOREIGN_SAMPLE = 200;

/**
 * The send time (Unix seconds) of the oldest message waiting in `app`'s inbox, or null when it is
 * empty or holds no readable timestamp. In the canonical band the oldest of each priority is the
 * highest score of its band (4 reads); members a peer scored are sampled, the 200 lowest and 200
 * highest scores (the peers' `priority * 1000 + timestamp` puts the oldest lowest within a
 * priority), so an inbox holding more foreign members than that may hide an older one.
 */
export async function oldestWaiting(redis: RedisClient, keys: Keyspace, app: string): Promise<number | null> {
  const key = keys.inbox(app);
  const bands = [0, 1, 2, 3].map((p) => {
    const low = SCORE_BASE + p * SCORE_BAND;
    return redis.zrevrangebyscore(key, String(low + SCORE_BAND - 1), String(low), "LIMIT", 0, 1);
  });
  const [heads, below, above] = await Promise.all([
    Promise.all(bands),
    redis.zrangebyscore(key, "-inf", `(${SCORE_BASE}`, "LIMIT", 0, FOREIGN_SAMPLE),
    redis.zrevrangebyscore(key, "+inf", `(${SCORE_TOP}`, "LIMIT", 0, FOREIGN_SAMPLE),
  ]);
  let oldest: number | null = null;
  for (const member of [...heads.flat(), ...below, ...above]) {
    const ts = summarize(member).timestamp;
    if (ts !== null && (oldest === null || ts < oldest)) oldest = ts;
  }
  return oldest;
}

/** One app as the dashboard lists it: `redactor ls`'s row plus scheduled and the oldest waiting. */
export interface AppOverview extends AppRow {
  /** Messages in `queue:<app>:scheduled`, waiting for their due time. */
  scheduled: number;
  /** Send time (Unix seconds) of the oldest message waiting in the inbox, null when none. */
  oldestWaiting: number | null;
}

/**
 * Every app that has a presence hash, a queue or scheduled messages, sorted by id, with its
 * presence, queue sizes, scheduled count and oldest waiting message.
 */
export async function listAppOverviews(redis: RedisClient, keys: Keyspace): Promise<AppOverview[]> {
  const [rows, scheduledKeys] = await Promise.all([
    listApps(redis, keys),
    scanAll(redis, keys.scheduledPattern()),
  ]);
  const known = new Set(rows.map((r) => r.app));
  for (const key of scheduledKeys) {
    const app = keys.appFromScheduledKey(key);
    if (app === null || known.has(app)) continue;
    known.add(app);
    rows.push({
      app,
      state: "-",
      kind: "-",
      lastSeen: null,
      inbox: 0,
      inFlight: 0,
      dead: 0,
      presence: null,
    });
  }
  rows.sort((a, b) => (a.app < b.app ? -1 : a.app > b.app ? 1 : 0));
  return Promise.all(
    rows.map(async (row) => {
      const [scheduled, oldest] = await Promise.all([
        redis.zcard(keys.scheduled(row.app)),
        row.inbox > 0 ? oldestWaiting(redis, keys, row.app) : Promise.resolve(null),
      ]);
      return { ...row, scheduled, oldestWaiting: oldest };
    }),
  );
}

/**
 * The key of message `id`'s status hash. In the peers' layout it is `message:<id>` whatever the
 * recipient. In the cluster layout it is `message:{recipient}:<id>`: with the recipient it is
 * known; without it, it is found by SCAN of every master for `message:{*}:<id>`. `key` is then
 * the pattern when none is found; `others` lists further hashes found (the same id sent to
 * several apps), sorted.
 */
export async function findMessageHash(
  redis: RedisClient,
  keys: Keyspace,
  id: string,
  recipient: string | undefined,
): Promise<{ key: string; others: string[] }> {
  if (!keys.hashTag || recipient !== undefined) return { key: keys.message(recipient ?? "", id), others: [] };
  const found = (await scanAll(redis, keys.messagePattern(id)))
    .filter((key) => keys.appFromMessageKey(key, id) !== null)
    .sort();
  const [first, ...others] = found;
  return { key: first ?? keys.messagePattern(id), others };
}

/** Where a message sits now. */
export type MessagePlace = "scheduled" | "inbox" | "in-flight" | "retry-wait" | "dead" | "gone";

/** One place where a copy of the message was found. */
export interface MessageLocation {
  place: Exclude<MessagePlace, "gone"> | "outbox";
  app: string;
  /** The sorted-set score: run-order score, lease deadline or retry time (ms), time of death (ms), due time (ms). */
  score: number;
  /** In an inbox: its place in the run order, 1 = next. */
  position?: number;
}

/** One step of a message's life, as far as Redis still shows it. */
export interface TimelineStep {
  /** `scheduled`, `sent`, `claimed`, `retry-wait`, `dead-lettered`, `completed`, `failed`, `timeout`, `cancelled`, `replied`, `waiting`, `processing`. */
  state: string;
  /** When it happened, ms since the epoch; null when Redis keeps no time for it. */
  at: number | null;
  detail: string;
  /** The step the message is in now. */
  current: boolean;
}

/** The reply to a request: the handler's (`reply_<id>`) or the error reply (`error_<id>`). */
export interface ReplyView {
  id: string;
  kind: "reply" | "error";
  /** The reply's own status hash, in its recipient's (the requester's) slot. */
  status: string | null;
  fields: Record<string, string>;
  /** The reply message itself while it is still in the requester's inbox or outbox, else null. */
  message: MessageSummary | null;
}

/** Everything Redis shows about one message. */
export interface MessageLifecycle {
  id: string;
  /** The status hash's key, or the SCAN pattern when none was found (cluster layout). */
  hashKey: string;
  /** The hash's fields; `{}` when it expired or was never written. */
  fields: Record<string, string>;
  /** Seconds until the hash expires; null without TTL or without hash. */
  ttlSeconds: number | null;
  /** The message as stored (inbox, lease set, dead letter, outbox or the scheduled hash's `member`). */
  message: MessageSummary | null;
  /** The member as stored, text; null when no copy is left. */
  member: string | null;
  /** Where it sits now. */
  place: MessagePlace;
  locations: MessageLocation[];
  dead: DeadEntry[];
  reply: ReplyView | null;
  timeline: TimelineStep[];
  /** The message's deadline, ms; null without a timeout. */
  deadline: number | null;
}

async function readReply(
  redis: RedisClient,
  keys: Keyspace,
  requestId: string,
  requester: string | null,
): Promise<ReplyView | null> {
  if (requester === null || requester === "") return null;
  for (const kind of ["reply", "error"] as const) {
    const id = `${kind === "reply" ? REPLY_ID_PREFIX : ERROR_REPLY_PREFIX}${requestId}`;
    const fields = await redis.hgetall(keys.message(requester, id));
    if (Object.keys(fields).length === 0) continue;
    // The reply itself: in the requester's inbox until consumed, and in the replier's outbox.
    const sightings = await locateMessage(redis, keys, id, [requester], fields.sender ?? null);
    const copy = sightings.find((s) => s.where === "inbox" || s.where === "outbox") ?? sightings[0];
    const member = copy ? (copy.where === "dead" ? (copy.dead?.member ?? null) : copy.member) : null;
    return { id, kind, status: fields.status ?? null, fields, message: member ? summarize(member) : null };
  }
  return null;
}

function numberField(value: string | undefined): number | null {
  if (value === undefined || value === "") return null;
  const n = Number(value);
  return Number.isFinite(n) ? n : null;
}

function buildTimeline(
  fields: Record<string, string>,
  message: MessageSummary | null,
  place: MessagePlace,
  locations: readonly MessageLocation[],
  dead: readonly DeadEntry[],
  reply: ReplyView | null,
): TimelineStep[] {
  const steps: Omit<TimelineStep, "current">[] = [];
  const status = fields.status ?? null;
  const due = numberField(fields.due);
  const ts = numberField(fields.timestamp) ?? message?.timestamp ?? null;
  const sender = fields.sender ?? message?.sender ?? "?";
  const recipient = fields.recipient ?? message?.recipient ?? "?";
  if (due !== null)
    steps.push({ state: "scheduled", at: null, detail: `due ${new Date(due).toISOString()}` });
  if (status === "cancelled") {
    steps.push({ state: "cancelled", at: null, detail: "cancelled before it was due" });
  } else if (status !== "scheduled") {
    steps.push({ state: "sent", at: ts === null ? null : ts * 1000, detail: `by ${sender} to ${recipient}` });
  }
  const attempts = numberField(fields.attempts) ?? 0;
  const finished = numberField(fields.finished_at);
  if (attempts > 0) {
    steps.push({
      state: "claimed",
      at: null,
      detail: `${attempts} delivery attempt${attempts === 1 ? "" : "s"}`,
    });
  }
  // A failure is written with its dead letter, so it comes first; a completion (after a retry) last.
  if (status === "failed" || status === "timeout") {
    steps.push({
      state: status,
      at: finished,
      detail: fields.error ?? (status === "timeout" ? "deadline passed before it started" : ""),
    });
  }
  for (const d of [...dead].sort((a, b) => a.atMs - b.atMs)) {
    steps.push({
      state: "dead-lettered",
      at: d.atMs,
      detail: `${d.reason}${d.error ? `: ${d.error}` : ""}${d.attempts === null ? "" : ` (after ${d.attempts} attempt${d.attempts === 1 ? "" : "s"})`}`,
    });
  }
  if (place === "inbox") {
    const at = locations.find((l) => l.place === "inbox");
    steps.push({
      state: "waiting",
      at: null,
      detail: `in the inbox of ${at?.app ?? recipient}${at?.position === undefined ? "" : `, position ${at.position} in run order`}`,
    });
  } else if (place === "in-flight") {
    const at = locations.find((l) => l.place === "in-flight");
    steps.push({
      state: "processing",
      at: null,
      detail: `leased by ${fields.lease || "?"}${at ? `, lease ends ${new Date(at.score).toISOString()}` : ""}`,
    });
  } else if (place === "retry-wait") {
    const at = locations.find((l) => l.place === "retry-wait");
    steps.push({
      state: "retry-wait",
      at: null,
      detail: `failed (${fields.error ?? "?"}); back in the inbox at ${at ? new Date(at.score).toISOString() : "?"}`,
    });
  }
  if (status === "completed") {
    steps.push({ state: status, at: finished, detail: "" });
  }
  if (reply) {
    const replyTs = reply.message?.timestamp ?? numberField(reply.fields.timestamp);
    steps.push({
      state: "replied",
      at: replyTs === null ? null : replyTs * 1000,
      detail: `${reply.kind === "error" ? "error reply" : "reply"} ${reply.id} to ${reply.fields.recipient ?? "?"} (${reply.status ?? "?"})`,
    });
  }
  // The current step: where it sits now, else the last thing that happened.
  const currentState =
    place === "inbox"
      ? "waiting"
      : place === "in-flight"
        ? "processing"
        : place === "retry-wait"
          ? "retry-wait"
          : place === "scheduled"
            ? "scheduled"
            : place === "dead"
              ? "dead-lettered"
              : (status ?? null);
  let currentIndex = -1;
  steps.forEach((s, i) => {
    if (s.state === currentState) currentIndex = i;
  });
  if (currentIndex < 0) currentIndex = steps.length - 1;
  return steps.map((s, i) => ({ ...s, current: i === currentIndex }));
}

/**
 * Everything Redis shows about message `id`: its status hash, every copy (inbox with its run
 * position, lease set, dead letters, scheduled set, the sender's outbox), its reply or error reply
 * (whose hashes live with the requester), and a timeline of its states.
 * @param recipient the app it was sent to, when known: saves a SCAN for the hash in the cluster
 *   layout and for the queues when the hash is gone.
 * @returns null when the id is found nowhere.
 */
export async function readMessageLifecycle(
  redis: RedisClient,
  keys: Keyspace,
  id: string,
  recipient?: string,
): Promise<MessageLifecycle | null> {
  const { key } = await findMessageHash(redis, keys, id, recipient);
  const [fields, ttl] = await Promise.all([redis.hgetall(key), redis.ttl(key)]);
  const app =
    recipient ??
    fields.recipient ??
    (keys.hashTag ? (keys.appFromMessageKey(key, id) ?? undefined) : undefined);
  const apps = app !== undefined ? [app] : [...(await scanQueueApps(redis, keys))].sort();
  const sightings = await locateMessage(redis, keys, id, apps, fields.sender ?? null);
  const locations: MessageLocation[] = [];
  const dead: DeadEntry[] = [];
  for (const s of sightings) {
    if (s.where === "dead") {
      if (s.dead) dead.push(s.dead);
      locations.push({ place: "dead", app: s.app, score: s.score });
    } else if (s.where === "in-flight") {
      // A failed message waiting for its retry sits in the lease set without a lease.
      const leased = fields.status === "processing" || (fields.lease !== undefined && fields.lease !== "");
      locations.push({ place: leased ? "in-flight" : "retry-wait", app: s.app, score: s.score });
    } else {
      locations.push({
        place: s.where,
        app: s.app,
        score: s.score,
        ...(s.rank === undefined ? {} : { position: s.rank }),
      });
    }
  }
  if (fields.status === "scheduled" && app !== undefined) {
    const due = await redis.zscore(keys.scheduled(app), id);
    if (due !== null) locations.push({ place: "scheduled", app, score: Number(due) });
  }
  if (Object.keys(fields).length === 0 && locations.length === 0) return null;
  const order: MessageLocation["place"][] = ["in-flight", "retry-wait", "inbox", "scheduled", "dead"];
  const current = order.find((p) => locations.some((l) => l.place === p));
  const place: MessagePlace = current === undefined || current === "outbox" ? "gone" : current;
  const carrier =
    sightings.find((s) => s.where !== "dead" && s.where !== "outbox") ??
    sightings.find((s) => s.where === "outbox") ??
    sightings.find((s) => s.dead?.member);
  const member =
    (carrier ? (carrier.where === "dead" ? carrier.dead?.member : carrier.member) : undefined) ??
    fields.member ??
    null;
  const message = member === null ? null : summarize(member);
  const requester = fields.sender ?? message?.sender ?? null;
  const reply = await readReply(redis, keys, id, requester);
  return {
    id,
    hashKey: key,
    fields,
    ttlSeconds: ttl >= 0 ? ttl : null,
    message,
    member,
    place,
    locations,
    dead,
    reply,
    timeline: buildTimeline(fields, message, place, locations, dead, reply),
    deadline: message ? deadlineMs(message) : null,
  };
}
