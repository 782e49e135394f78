/**
 * Dead-letter operations shared by `redactor dlq` and the dashboard: find dead letters by id,
 * put them back in their app's inbox (retry), delete them (purge). Every write touches one app's
 * keys only (its dead set, its inbox and the hashes of messages sent to it), so each transaction
 * stays in one cluster slot in the hash-tagged layout.
 */
import { type DeadEntry, deadlineMs, parseDeadEntry, readDead, scanFor } from "./cli/queues.js";
import type { RedisClient } from "./cluster.js";
import type { Keyspace } from "./keyspace.js";
import { STATUS } from "./lifecycle.js";
import { mailboxConfig } from "./mailbox.js";
import { canonicalScore, isPriority, monotonicMicros } from "./priority.js";

/** Dead letters whose message cannot run again as it is stored, with the reason why. */
export const NOT_RETRYABLE: Readonly<Record<string, string>> = {
  malformed: "the member is not a message; it would be refused again",
  oversize: "only the first 1 KiB of an oversize message is kept",
};

/**
 * Finds the dead letters of message `ids` in `queue:<app>:dead` (ZSCAN, never KEYS).
 * @returns the entries found (a message dead-lettered twice has two) and the ids with none.
 */
export async function findDeadLetters(
  redis: RedisClient,
  keys: Keyspace,
  app: string,
  ids: readonly string[],
): Promise<{ entries: DeadEntry[]; notFound: string[] }> {
  const entries: DeadEntry[] = [];
  const notFound: string[] = [];
  for (const id of ids) {
    const found = (await scanFor(redis, keys.dead(app), id))
      .map((r) => parseDeadEntry(r.member, r.score))
      .filter((e) => e.id === id);
    if (found.length === 0) notFound.push(id);
    entries.push(...found);
  }
  return { entries, notFound };
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
  /** Dead letters left alone, and why (cannot run again, or gone meanwhile). */
  skipped: { id: string | null; reason: string }[];
  /** Ids asked for that have no dead letter. */
  notFound: string[];
  /** Dead letters of the app left afterwards. */
  remaining: number;
}

/**
 * Puts dead letters of `app` back in its inbox, status `pending`, attempts from 0, and wakes the
 * app with one PUBLISH. Each goes back at its canonical score (its priority, then its original
 * send time), byte for byte as it was stored. Malformed and oversize dead letters are skipped.
 * @param which `{ ids }`: the dead letters of these message ids; `{ limit }`: at most this many,
 *   oldest first.
 * @throws the Redis client's errors (connection lost, NOPERM …).
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
      : { ...(await readDead(redis, keys, app, which.limit, "oldest")), notFound: [] };
  const ttl = mailboxConfig().messageTtlSeconds;
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
    const priority = isPriority(message.priority) ? message.priority : 2;
    const us = message.timestamp === null ? monotonicMicros() : Math.round(message.timestamp * 1e6);
    // The hash of a message sent to `app`: in the cluster layout, message:{app}:<id>, in the
    // slot of the dead set and the inbox.
    const hash = keys.message(app, entry.id);
    // One transaction per dead letter (one slot): it leaves the dead set and enters the inbox together.
    // Two people retrying the same one at once both ZADD the same member, which is harmless.
    const result = await redis
      .multi()
      .zrem(keys.dead(app), entry.raw)
      .zadd(keys.inbox(app), String(canonicalScore(priority, us)), entry.memberBytes)
      .hset(hash, {
        status: STATUS.pending,
        sender: message.sender ?? "",
        recipient: message.recipient ?? app,
        timestamp: String(message.timestamp ?? us / 1e6),
        type: message.type ?? "",
        attempts: 0,
      })
      .hdel(hash, "lease", "error", "finished_at")
      .expire(hash, ttl)
      .exec();
    if (Number(result?.[0]?.[1] ?? 0) === 0) {
      skipped.push({
        id: entry.id,
        reason: "already gone from the dead letters (retried or purged meanwhile)",
      });
      continue;
    }
    const deadline = deadlineMs(message);
    retried.push({
      id: entry.id,
      type: message.type,
      priority,
      deadlinePassed: deadline !== null && deadline < now,
    });
  }
  const last = retried.at(-1);
  if (last) await redis.publish(keys.channel(app), `new_message:${last.id}`);
  const remaining = await redis.zcard(keys.dead(app));
  return { retried, skipped, notFound, remaining };
}

/** What `purgeDeadLetters` did. */
export interface PurgeOutcome {
  purged: number;
  /** Ids asked for that have no dead letter. */
  notFound: string[];
  remaining: number;
}

/**
 * Deletes dead letters of `app`.
 * @param which `{ ids }`: those of these message ids; `{ olderThanMs }`: those that died longer
 *   ago than this (ms); `{ all: true }`: every one.
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
  if ("ids" in which) {
    const found = await findDeadLetters(redis, keys, app, which.ids);
    notFound = found.notFound;
    if (found.entries.length > 0) purged = await redis.zrem(key, ...found.entries.map((e) => e.raw));
  } else if ("olderThanMs" in which) {
    const cutoff = Date.now() - which.olderThanMs;
    purged = await redis.zremrangebyscore(key, "-inf", `(${cutoff}`);
  } else {
    const result = await redis.multi().zcard(key).del(key).exec();
    purged = Number(result?.[0]?.[1] ?? 0);
  }
  const remaining = await redis.zcard(key);
  return { purged, notFound, remaining };
}
