/**
 * Scheduled messages: `tell(type, payload, { delayMs })` / `{ at }`. A scheduled message waits in
 * Redis, not in any process: its `message:<id>` hash holds status `scheduled`, the due time and
 * the member itself, and its id sits in `queue:<app>:scheduled` scored by the due time (whole
 * ms, Redis' clock). When it is due, any redactor process moves it into the recipient's plain
 * inbox (src/lua/promote.lua), byte for byte, so a peer sees it only then, as an ordinary message
 * whose `timestamp` is its due time.
 *
 * Which apps have something scheduled is kept in one index, `redactor:scheduled` (a sorted set:
 * member = app id, score = ms), in a slot of its own on a cluster. Each system runs one
 * Scheduler: it calls src/lua/due.lua, which claims the index entries that are due by Redis'
 * `TIME`, promotes each claimed app, gives each entry back (src/lua/reindex.lua), and sets ONE
 * host timer (through the HostClock seam) for the earliest entry left; a PUBLISH on
 * `redactor:scheduled:due` carrying each new due time re-arms every process at once. The timer
 * is never more than INDEX_POLL_MS (or `sweepMs`, if longer) away, for entries whose hint was
 * lost: idle, a process sends one `due.lua` call per 5 s, whatever the number of scheduled
 * messages.
 * The host timer may fire early or late; Redis' `TIME` alone decides what is due, so a message is
 * never delivered before its due time, and an early timer only finds nothing and re-arms.
 *
 * ## The index protocol, and why no message is left out
 *
 * Scores: a due time is a whole number of ms; a claim is `TIME + CLAIM_MS + 0.5`, so a score with
 * a fractional part is a claim. Writers of an entry for app A:
 *
 * - a sender, after schedule.lua (S) has put a message due at D in A's set, runs reindex.lua
 *   as a sender (I): the entry becomes D when it is absent, later than D, or a claim;
 * - a promoter claims A in due.lua (C, entry := claim c), runs promote.lua (P, which moves what
 *   is due and returns the next due time N, or none), then reindex.lua with its claim (R): when
 *   the entry still equals c it becomes N, or is removed when there is none; otherwise R acts
 *   as a sender with N.
 *
 * Claim: after every step, each message m of A still scheduled has an index entry at or before
 * its due time, or an entry that is a claim (expired claims are due, so they are claimed again:
 * a promoter that dies delays A by CLAIM_MS at most). The only steps that raise or remove an
 * entry are C (only entries already due, and what it writes is a claim) and R when the entry
 * still equals c. Take m scheduled by S and indexed by I (S before I, both by one sender).
 * If S came before P, P saw m: either it moved m, or N <= due(m), and R writes N or lowers the
 * entry further. If S came after P, then so did I: if I came before R, I found the claim c (only
 * a sender's I or another promoter's C or R change it, and any of those replaces c) and
 * replaced it with an integer, so R does not find c and only lowers the entry; if I came after
 * R, I leaves the entry at or before D. Another promoter whose claim overlaps (ours expired)
 * writes its own claim c', so our late R does not find c either, and only lowers. S and P run
 * in A's slot and are atomic, so "before" and "after" are well defined; C, I and R run in the
 * index's slot, also atomic. The one gap is a sender that dies between S and I (a crash between
 * two commands): start() re-indexes every app's scheduled set (one SCAN) when a system starts,
 * so such a message is delivered once any redactor process starts after it.
 */
import type { Logger } from "pino";
import type { HostClock, TimerHandle } from "./clock.js";
import { perKey, type RedisClient, scanAll } from "./cluster.js";
import { fromRedisReply } from "./errors.js";
import type { Keyspace } from "./keyspace.js";
import { STATUS } from "./lifecycle.js";
import { Scripts } from "./scripts.js";

/** How long a promoter's claim on an app's index entry lasts, ms. */
export const CLAIM_MS = 5000;

/** How many apps one due.lua call claims. */
const BATCH = 100;

/** How many messages one promote.lua call moves (about 1 ms of Redis' time). */
const PROMOTE_BATCH = 1000;

/**
 * The longest the timer waits before the index is read again, ms, when no entry is due sooner:
 * it only matters when every hint was lost (a sender that died between its index write and its
 * PUBLISH), since each round arms for the index's true head and every new due time is published.
 */
export const INDEX_POLL_MS = 5000;

/** How many rounds of claims one wake-up runs before it lets the event loop breathe. */
const MAX_ROUNDS = 50;

/** What promote.lua did for one app. */
export interface PromoteResult {
  /** Messages moved into the inbox. */
  moved: number;
  /** Ids only taken out of the scheduled set (hash gone, cancelled, or sent another way). */
  dropped: number;
  /** Due time (ms) of the earliest message still scheduled, or null when none is. */
  next: number | null;
}

/** How `cancel` ended (the outcome codes of src/lua/cancel.lua). */
export type CancelOutcome =
  /** It was scheduled and is not any more: it will never be delivered. */
  | "cancelled"
  /** No such message (never sent, or its hash expired). */
  | "not-found"
  /** It exists but is not scheduled: already delivered (due and moved to the inbox), or cancelled. */
  | "not-scheduled";

const CANCEL_OUTCOME: Readonly<Record<number, CancelOutcome>> = {
  1: "cancelled",
  0: "not-found",
  [-1]: "not-scheduled",
};

/** A scheduled message as `listScheduled` shows it. */
export interface ScheduledMessage {
  id: string;
  /** Due time, ms since the epoch (Redis' clock). */
  dueMs: number;
  /** Its message_type, or null when its hash is gone. */
  type: string | null;
  /** Its sender, or null when its hash is gone. */
  sender: string | null;
}

/** What a Scheduler needs from its system. */
export interface SchedulerOptions {
  redis: RedisClient;
  keys: Keyspace;
  /** The host-side timer seam (src/clock.ts). */
  clock: HostClock;
  /** Redis' time as this process estimates it, ms (the system's RedisClock). */
  redisNowMs: () => number;
  /** How long a `message:<id>` hash lives once its message is delivered, s. */
  messageTtlSeconds: number;
  /** The longest the timer waits before the index is read again, ms (INDEX_POLL_MS). */
  pollMs: number;
  log: Logger;
  /** Messages were moved into an inbox by this process. */
  promoted?: (app: string, count: number) => void;
}

/** Promotes due scheduled messages for every app; one per system (see the module comment). */
export class Scheduler {
  private readonly scripts: Scripts;
  private timer: TimerHandle | undefined;
  /** When the armed timer fires, ms by the Redis clock estimate. */
  private armedFor = Number.POSITIVE_INFINITY;
  private running: Promise<void> | undefined;
  /** A wake-up came while running: run another round. */
  private again = false;
  /** The earliest due time hinted while running, re-armed for afterwards. */
  private hinted = Number.POSITIVE_INFINITY;
  private stopped = true;
  /** The re-index that start() runs in the background. */
  private repairing: Promise<void> | undefined;

  constructor(private readonly options: SchedulerOptions) {
    this.scripts = new Scripts(options.redis);
  }

  /**
   * Starts promoting: re-indexes every app's scheduled set in the background (so that a message
   * whose sender died before indexing it is found), and looks at the index at once.
   */
  start(): void {
    this.stopped = false;
    this.repairing = this.repair()
      .then(() => {})
      .catch((err: unknown) => {
        // Stopped meanwhile (the connection closes): nothing to report.
        if (this.stopped) return;
        this.options.log.warn(
          { err },
          "could not re-index scheduled messages at start; retried at the next start",
        );
      });
    this.wake();
  }

  /** Stops the timer and waits for a round (and the start's re-index) in progress to end. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.options.clock.clearTimeout(this.timer);
    this.timer = undefined;
    await Promise.all([this.running, this.repairing]);
  }

  /** Looks at the index now (a reconnect: Redis may have restarted). */
  wake(): void {
    if (this.stopped) return;
    if (this.running) {
      this.again = true;
      return;
    }
    this.options.clock.clearTimeout(this.timer);
    this.timer = undefined;
    this.armedFor = Number.POSITIVE_INFINITY;
    this.running = this.rounds().finally(() => {
      this.running = undefined;
    });
  }

  /** A message is due at `dueMs` (ms, Redis' clock): re-arm the timer if that is sooner. */
  hint(dueMs: number): void {
    if (this.stopped || !Number.isFinite(dueMs)) return;
    if (this.running) {
      this.hinted = Math.min(this.hinted, dueMs);
      return;
    }
    if (dueMs < this.armedFor) this.arm(dueMs);
  }

  /** Text published on the scheduled channel: a due time in ms. */
  onPublished(text: string): void {
    this.hint(Number(text));
  }

  /**
   * Lowers `app`'s index entry to `dueMs` before Mailbox.schedule writes the message (a sender's
   * write: it only ever lowers an entry, so it is safe at any time; an entry with nothing behind
   * it is removed by the next promoter that claims it).
   * @throws RedisCommandError when Redis refuses the index write.
   */
  async preindex(app: string, dueMs: number): Promise<void> {
    await this.reindex(app, "", dueMs);
  }

  /**
   * Records in the index that `app` has a message due at `dueMs` (after Mailbox.schedule), tells
   * every process (PUBLISH on the scheduled channel) and re-arms this one.
   * @throws RedisCommandError when Redis refuses the index write.
   */
  async indexed(app: string, dueMs: number): Promise<void> {
    await this.reindex(app, "", dueMs);
    this.hint(dueMs);
    await this.options.redis.publish(this.options.keys.scheduledChannel(), String(dueMs)).catch(() => {
      // A hint only: the other processes read the index within INDEX_POLL_MS anyway.
    });
  }

  /**
   * Cancels scheduled message `id` of `app` if it is still scheduled (not yet moved into the
   * inbox). See CancelOutcome.
   * @throws RedisCommandError when Redis refuses the script.
   */
  async cancel(app: string, id: string): Promise<CancelOutcome> {
    const { keys } = this.options;
    let code: unknown;
    try {
      code = await this.scripts.run(
        "cancel",
        [keys.scheduled(app), keys.message(app, id)],
        [id, STATUS.cancelled, this.options.messageTtlSeconds],
      );
    } catch (err) {
      throw fromRedisReply(`cancel scheduled message "${id}" of "${app}"`, err);
    }
    const outcome = CANCEL_OUTCOME[Number(code)];
    if (!outcome) throw new Error(`cancel.lua returned the unknown outcome code ${String(code)}`);
    return outcome;
  }

  /** Moves `app`'s due messages into its inbox (at most PROMOTE_BATCH per call; see PromoteResult). */
  async promote(app: string): Promise<PromoteResult> {
    const { keys } = this.options;
    const [moved, dropped, next] = (await this.scripts.run(
      "promote",
      [keys.scheduled(app), keys.inbox(app), keys.status(app)],
      [
        keys.messagePrefix(app),
        PROMOTE_BATCH,
        this.options.messageTtlSeconds,
        STATUS.scheduled,
        STATUS.pending,
        keys.channel(app),
        keys.wakeChannel(app) ?? "",
      ],
    )) as [number, number, number];
    const nextMs = Number(next);
    return { moved: Number(moved), dropped: Number(dropped), next: nextMs < 0 ? null : nextMs };
  }

  /** reindex.lua: `claim` '' for a sender; `dueMs` null when nothing is left (a claim only). */
  private async reindex(app: string, claim: string, dueMs: number | null): Promise<void> {
    try {
      await this.scripts.run(
        "reindex",
        [this.options.keys.scheduledIndex()],
        [app, claim, dueMs === null ? "" : String(dueMs)],
      );
    } catch (err) {
      throw fromRedisReply(`index the scheduled messages of "${app}"`, err);
    }
  }

  /** Claims, promotes and re-indexes due apps until none is due, then arms the timer. */
  private async rounds(): Promise<void> {
    let head: number | null = null;
    let failed = false;
    try {
      for (let round = 0; round < MAX_ROUNDS && !this.stopped; round++) {
        this.again = false;
        const [, claim, apps, next] = (await this.scripts.run(
          "due",
          [this.options.keys.scheduledIndex()],
          [BATCH, CLAIM_MS],
        )) as [number, string, string[], string];
        head = next === "" ? null : Number(next);
        await Promise.all(apps.map((app) => this.promoteClaimed(String(app), claim)));
        // After work (or a wake-up meanwhile) one more call: it finds what is left due and
        // the true head of the index, without our claims.
        if (apps.length === 0 && !this.again) break;
        if (round === MAX_ROUNDS - 1) head = 0;
      }
    } catch (err) {
      failed = true;
      this.options.log.debug({ err }, "could not read the index of scheduled messages; retrying");
    }
    if (this.stopped) return;
    const hinted = this.hinted;
    this.hinted = Number.POSITIVE_INFINITY;
    this.arm(Math.min(failed || head === null ? Number.POSITIVE_INFINITY : head, hinted));
  }

  /** Promotes one claimed app and gives its index entry back; a failure lets the claim expire. */
  private async promoteClaimed(app: string, claim: string): Promise<void> {
    try {
      const result = await this.promote(app);
      await this.reindex(app, claim, result.next);
      if (result.moved > 0) this.options.promoted?.(app, result.moved);
      if (result.dropped > 0) {
        this.options.log.warn(
          { app, dropped: result.dropped },
          `${result.dropped} due scheduled id(s) of "${app}" had no scheduled message behind them ` +
            "(its hash was deleted, or the id was sent or cancelled another way); nothing delivered for them",
        );
      }
    } catch (err) {
      this.options.log.warn(
        { err, app },
        `could not deliver the due scheduled messages of "${app}"; retried within ${CLAIM_MS} ms`,
      );
    }
  }

  /** Sets the one timer for `atMs` (Redis' clock), at most pollMs away, at least 1 ms. */
  private arm(atMs: number): void {
    if (this.stopped) return;
    const { clock, redisNowMs, pollMs } = this.options;
    const now = redisNowMs();
    const delay = Math.max(1, Math.min(pollMs, Math.ceil(atMs - now)));
    clock.clearTimeout(this.timer);
    this.armedFor = now + delay;
    this.timer = clock.setTimeout(() => {
      this.timer = undefined;
      this.wake();
    }, delay);
    this.timer.unref();
  }

  /**
   * Writes an index entry for every app that has scheduled messages (SCAN of every master): the
   * earliest due time of each. Lowers entries only, so it is safe at any time.
   */
  async repair(): Promise<number> {
    const { redis, keys } = this.options;
    const found = await scanAll(redis, keys.scheduledPattern());
    const apps = found
      .map((key) => keys.appFromScheduledKey(key))
      .filter((app): app is string => app !== null);
    const heads = await perKey(
      redis,
      apps.map((app) => keys.scheduled(app)),
      (p, key) => p.zrange(key, 0, 0, "WITHSCORES"),
    );
    let indexed = 0;
    for (const [i, app] of apps.entries()) {
      const head = heads[i]?.[1] as string[] | undefined;
      if (!head || head.length < 2) continue;
      // Floored: a score's fraction orders priorities within one ms (src/mailbox.ts scheduledScore).
      await this.reindex(app, "", Math.floor(Number(head[1])));
      indexed += 1;
    }
    if (indexed > 0) this.wake();
    return indexed;
  }
}

/**
 * The scheduled messages of `app`, earliest due first, at most `limit` (for tooling: the CLI's
 * `inspect`). Reads only.
 */
export async function listScheduled(
  redis: RedisClient,
  keys: Keyspace,
  app: string,
  limit = 100,
): Promise<{ total: number; messages: ScheduledMessage[] }> {
  const key = keys.scheduled(app);
  const [total, flat] = await Promise.all([
    redis.zcard(key),
    redis.zrange(key, 0, Math.max(0, limit - 1), "WITHSCORES"),
  ]);
  const messages: ScheduledMessage[] = [];
  for (let i = 0; i < flat.length; i += 2) {
    const id = flat[i] as string;
    const [type, sender] = await redis.hmget(keys.message(app, id), "type", "sender");
    messages.push({ id, dueMs: Math.floor(Number(flat[i + 1])), type: type ?? null, sender: sender ?? null });
  }
  return { total, messages };
}
