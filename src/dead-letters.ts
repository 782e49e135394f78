/**
 * Dead-letter operations shared by `redactor dlq` and the dashboard: find dead letters by id,
 * put them back in their app's inbox (retry), delete them (purge). Every write touches one app's
 * keys only (its dead set, its inbox, its status hash and the hashes of messages sent to it), so
 * each call stays in one cluster slot in the hash-tagged layout. Entries are handled as the exact
 * bytes stored: a retry or purge removes that entry or nothing, and says which.
 */
import { type DeadEntry, deadlineMs, idPattern, parseDeadEntry } from "./cli/queues.js";
import type { RedisClient } from "./cluster.js";
import { fromRedisReply } from "./errors.js";
import type { Keyspace } from "./keyspace.js";
import { STATUS } from "./lifecycle.js";
import { mailboxConfig } from "./mailbox.js";
import { isPriority } from "./priority.js";
import { Scripts } from "./scripts.js";

/** Dead letters whose message cannot run again as it is stored, with the reason why. */
export const NOT_RETRYABLE: Readonly<Record<string, string>> = {
  malformed: "the member is not a message; it would be refused again",
  oversize: "only the first 1 KiB of an oversize message is kept",
};

/** A dead letter with its sorted-set member as the exact bytes stored (to remove exactly that). */
export interface StoredDeadLetter extends DeadEntry {
  /** The entry byte for byte (`raw` is its UTF-8 reading, which may differ for foreign bytes). */
  rawBytes: Buffer;
}

function stored(raw: Buffer, score: number): StoredDeadLetter {
  return { ...parseDeadEntry(raw.toString("utf8"), score), rawBytes: raw };
}

/** `[member, score, member, score …]` Buffers as entries. */
function storedPairs(flat: readonly Buffer[]): StoredDeadLetter[] {
  const out: StoredDeadLetter[] = [];
  for (let i = 0; i + 1 < flat.length; i += 2)
    out.push(stored(flat[i] as Buffer, Number((flat[i + 1] as Buffer).toString())));
  return out;
}

/**
 * Finds the dead letters of message `ids` in `queue:<app>:dead` (ZSCAN, never KEYS).
 * @returns the entries found (a message dead-lettered twice has two) and the ids with none.
 * @throws the Redis client's errors (connection lost, NOPERM …).
 */
export async function findDeadLetters(
  redis: RedisClient,
  keys: Keyspace,
  app: string,
  ids: readonly string[],
): Promise<{ entries: StoredDeadLetter[]; notFound: string[] }> {
  const entries: StoredDeadLetter[] = [];
  const notFound: string[] = [];
  for (const id of ids) {
    const found = new Map<string, StoredDeadLetter>();
    let cursor = "0";
    do {
      const [next, flat] = await redis.zscanBuffer(
        keys.dead(app),
        cursor,
        "MATCH",
        idPattern(id),
        "COUNT",
        1000,
      );
      cursor = next.toString();
      for (const e of storedPairs(flat)) if (e.id === id) found.set(e.rawBytes.toString("hex"), e);
    } while (cursor !== "0");
    if (found.size === 0) notFound.push(id);
    entries.push(...found.values());
  }
  return { entries, notFound };
}

/** The `limit` oldest dead letters of `app`, as stored. */
async function oldestDeadLetters(
  redis: RedisClient,
  keys: Keyspace,
  app: string,
  limit: number,
): Promise<StoredDeadLetter[]> {
  return storedPairs(await redis.zrangeBuffer(keys.dead(app), 0, limit - 1, "WITHSCORES"));
}

/** One dead letter put back in its inbox. */
export interface RetriedLetter {
  id: string;
  type: string | null;
  priority: number;
  /** The message's own deadline has passed: it will be marked timeout rather than run. */
  deadlinePassed: boolean;
}

/** What `retryDeadLetters` did. */
export interface RetryOutcome {
  retried: RetriedLetter[];
  /** Dead letters left alone, and why (cannot run again, gone meanwhile, or their id is live again). */
  skipped: { id: string | null; reason: string }[];
  /** Ids asked for that have no dead letter. */
  notFound: string[];
  /** Dead letters of the app left afterwards. */
  remaining: number;
}

/** What retry-dead.lua did with one dead letter (its outcome codes, src/lua/retry-dead.lua). */
export type RetryDeadResult =
  /** Out of the dead set and in the inbox, `pending`, in one atomic step. */
  | { outcome: "retried" }
  /** No longer in the dead set (retried or purged meanwhile): nothing was written. */
  | { outcome: "gone" }
  /** Its id is live again (sent again since it died): nothing was written. */
  | { outcome: "live"; status: string };

/** retry-dead.lua's outcome codes. */
const RETRY_OUTCOME: Readonly<Record<number, RetryDeadResult["outcome"]>> = {
  1: "retried",
  0: "gone",
  [-1]: "live",
};

/** The reason a dead letter the script left alone gives in `skipped`. */
export const GONE_REASON = "already gone from the dead letters (retried or purged meanwhile)";

/**
 * Puts dead letters of `app` back in its inbox, status `pending`, attempts from 0, each with one
 * call of src/lua/retry-dead.lua: the exact entry leaves the dead set and the member (byte for
 * byte as stored) enters the inbox together, or nothing happens (the entry is gone: retried or
 * purged meanwhile; or its id is live again). Each goes in scored as a send would score it (in a
 * redactor inbox its canonical score: its priority, then its original send time), and the app is
 * woken as by a send. Malformed and oversize dead letters are skipped.
 * @param which `{ ids }`: the dead letters of these message ids; `{ limit }`: at most this many,
 *   oldest first.
 * @returns `retried` lists exactly the dead letters this call moved; `skipped` those it left
 *   alone and why; `notFound` the ids with no dead letter when it looked.
 * @throws RedisCommandError when Redis refuses the script (OOM, NOPERM …: that letter was not
 *   retried, those before it were); the Redis client's errors (connection lost …).
 */
export async function retryDeadLetters(
  redis: RedisClient,
  keys: Keyspace,
  app: string,
  which: { ids: readonly string[] } | { limit: number },
): Promise<RetryOutcome> {
  const { entries, notFound } =
    "ids" in which
      ? await findDeadLetters(redis, keys, app, which.ids)
      : { entries: await oldestDeadLetters(redis, keys, app, which.limit), notFound: [] };
  const scripts = new Scripts(redis);
  const ttl = mailboxConfig().messageTtlSeconds;
  const live = `${STATUS.pending} ${STATUS.processing} ${STATUS.completed} ${STATUS.scheduled}`;
  const retried: RetriedLetter[] = [];
  const skipped: { id: string | null; reason: string }[] = [];
  const now = Date.now();
  for (const entry of entries) {
    const message = entry.message;
    const blocked = NOT_RETRYABLE[entry.reason];
    if (blocked || !entry.memberBytes || !message || message.problem || entry.id === null) {
      skipped.push({
        id: entry.id,
        reason: blocked ?? `not a valid message: ${message?.problem ?? "no member"}`,
      });
      continue;
    }
    const result = await retryOne(scripts, keys, app, entry, entry.memberBytes, entry.id, message, ttl, live);
    if (result.outcome === "gone") {
      skipped.push({ id: entry.id, reason: GONE_REASON });
      continue;
    }
    if (result.outcome === "live") {
      skipped.push({
        id: entry.id,
        reason:
          `message ${entry.id} is ${result.status} again (sent again since it died): a retry would ` +
          "run that id twice; purge this dead letter if it is no longer wanted",
      });
      continue;
    }
    const deadline = deadlineMs(message);
    retried.push({
      id: entry.id,
      type: message.type,
      priority: isPriority(message.priority) ? message.priority : 2,
      deadlinePassed: deadline !== null && deadline < now,
    });
  }
  const remaining = await redis.zcard(keys.dead(app));
  return { retried, skipped, notFound, remaining };
}

/** One call of retry-dead.lua. */
async function retryOne(
  scripts: Scripts,
  keys: Keyspace,
  app: string,
  entry: StoredDeadLetter,
  member: Buffer,
  id: string,
  message: NonNullable<DeadEntry["message"]>,
  ttl: number,
  live: string,
): Promise<RetryDeadResult> {
  let reply: unknown;
  try {
    reply = await scripts.run(
      "retry-dead",
      // The hash of a message sent to `app`: message:{app}:<id> in the cluster layout, in the
      // slot of the dead set and the inbox.
      [keys.dead(app), keys.inbox(app), keys.status(app), keys.message(app, id)],
      [
        entry.rawBytes,
        member,
        id,
        ttl,
        STATUS.pending,
        live,
        keys.channel(app),
        keys.wakeChannel(app) ?? "",
        message.sender ?? "",
        message.recipient ?? app,
        String(message.timestamp ?? Date.now() / 1000),
        message.type ?? "",
      ],
    );
  } catch (err) {
    throw fromRedisReply(`retry dead letter ${id} of "${app}"`, err);
  }
  const [code, status] = reply as [number, string];
  const outcome = RETRY_OUTCOME[Number(code)];
  if (outcome === "live") return { outcome, status: String(status) };
  if (outcome) return { outcome };
  throw new Error(`retry-dead.lua returned the unknown outcome code ${String(code)}`);
}

/** What `purgeDeadLetters` did. */
export interface PurgeOutcome {
  /** How many dead letters this call deleted (exactly those; never one retried meanwhile). */
  purged: number;
  /** Ids asked for that have no dead letter. */
  notFound: string[];
  /** Ids asked for whose dead letters were found but were gone when deleted (retried or purged meanwhile). */
  gone: string[];
  remaining: number;
}

/**
 * Deletes dead letters of `app`. Each deletion is one command on the dead set, so it removes
 * exactly the entries still there at that moment and counts exactly those.
 * @param which `{ ids }`: those of these message ids (each entry found is removed by its exact
 *   bytes, if it is still there); `{ olderThanMs }`: those that died longer ago than this (ms,
 *   judged by Redis' clock, the clock that scored them); `{ all: true }`: every one.
 * @throws the Redis client's errors.
 */
export async function purgeDeadLetters(
  redis: RedisClient,
  keys: Keyspace,
  app: string,
  which: { ids: readonly string[] } | { olderThanMs: number } | { all: true },
): Promise<PurgeOutcome> {
  const key = keys.dead(app);
  let purged = 0;
  let notFound: string[] = [];
  const gone: string[] = [];
  if ("ids" in which) {
    const found = await findDeadLetters(redis, keys, app, which.ids);
    notFound = found.notFound;
    const removed = new Map<string, number>();
    for (const entry of found.entries) {
      const n = await redis.zrem(key, entry.rawBytes);
      purged += n;
      const id = entry.id as string;
      removed.set(id, (removed.get(id) ?? 0) + n);
    }
    for (const [id, n] of removed) if (n === 0) gone.push(id);
  } else if ("olderThanMs" in which) {
    const [seconds, micros] = await redis.time();
    const cutoff = Number(seconds) * 1000 + Math.floor(Number(micros) / 1000) - which.olderThanMs;
    purged = await redis.zremrangebyscore(key, "-inf", `(${cutoff}`);
  } else {
    purged = await redis.zremrangebyrank(key, 0, -1);
  }
  const remaining = await redis.zcard(key);
  return { purged, notFound, gone, remaining };
}
