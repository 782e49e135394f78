/**
 * The mailbox: the Redis side of sending, claiming and finishing messages, one Lua command
 * each (src/lua). Statuses written by the scripts come from the lifecycle machine.
 *
 * On a Redis Cluster every script call keeps to one slot, the recipient's (the cluster layout
 * puts an app's queues, presence and message hashes there). What crosses apps is split into
 * calls that keep the guarantees: a send writes the sender's outbox copy after the message;
 * a reply is sent (and durable) before the request it answers is marked done, under an id
 * derived from the request (`reply_<id>`) so that a repeat is a duplicate the send skips; and
 * lease holders are judged dead from their heartbeat keys by the caller, not inside the script.
 */
import type { Redis } from "ioredis";
import { existsEach, isCluster, masterOf, type RedisClient, slotOf } from "./cluster.js";
import { type Envelope, encodeEnvelope } from "./envelope.js";
import { fromRedisReply, MessageTooLargeError, ReplicationError } from "./errors.js";
import type { Keyspace } from "./keyspace.js";
import { type LifecycleEvent, nextStatus, STATUS } from "./lifecycle.js";
import { canonicalScore, type Priority, wireScore } from "./priority.js";
import { Scripts } from "./scripts.js";

/** Limits and lifetimes of mailboxes. */
export interface MailboxOptions {
  /**
   * How long a `message:<id>` hash lives after its last change, in seconds.
   * @default 86400 (24 h)
   */
  messageTtlSeconds?: number;
  /**
   * How many copies of sent messages `queue:<app>:outbox` keeps; 0 turns the outbox off.
   * @default 1000
   */
  outboxCap?: number;
  /**
   * Largest message, in bytes of JSON, that is sent or accepted.
   * @default 1048576 (1 MiB)
   */
  maxMessageBytes?: number;
  /**
   * How long a claimed message stays leased before another consumer may take it back, in ms.
   * @default 30000
   */
  leaseMs?: number;
  /**
   * Wait for replicas (Redis' WAIT) after each send and each finish: a send resolves only once
   * `replicas` replicas of the master that took it have it, so a failover (the master dies, a
   * replica is promoted) cannot lose a message whose send resolved. Fewer within `timeoutMs`:
   * the send rejects with ReplicationError (repeating it is safe), a finish is logged (the
   * message may run again after a failover). Costs a round trip per call. See the README,
   * "Redis Cluster", for what each setting guarantees.
   * @default { replicas: 0 } (no waiting: a failover may lose the last writes the master took)
   */
  durability?: Durability;
}

/** How many replicas must confirm a write (MailboxOptions.durability). */
export interface Durability {
  /** Replicas that must confirm; 0 waits for none. @default 0 */
  replicas: number;
  /** How long to wait for them, ms. @default 1000 */
  timeoutMs?: number;
}

/** A message encoded for the wire, with both of its possible inbox scores. */
export interface EncodedMessage {
  envelope: Envelope;
  member: string;
  canonicalScore: number;
  wireScore: number;
  /**
   * The sender's trace context (W3C `traceparent`, src/tracing.ts), written into the message's
   * hash by `send` and `schedule`, never into the envelope; absent when tracing is off.
   */
  traceparent?: string;
}

/** A message handed out by `claim`. */
export interface ClaimedMessage {
  /** The inbox member, byte for byte as it was stored: handed back as it is, never re-encoded. */
  member: Buffer;
  /** How many runs of it started before this claim. */
  runsBefore: number;
  /**
   * True for the first message of a claim: the claim already counted its run. Every other one
   * is counted by `finish` (its `start` argument) as its handler starts.
   */
  counted: boolean;
  /** Its id (the claim checked it has one that every script and decodeEnvelope read alike). */
  id: string;
  /** Its priority, from its canonical score. */
  priority: Priority;
  /** The `traceparent` of its hash, read only when the claim asked for it (tracing on). */
  traceparent?: string;
}

/**
 * Why a script did or did not write a record, per record (the outcome codes in the headers of
 * src/lua/finish.lua and extend.lua).
 */
export type RecordOutcome =
  /** Written (finish), extended (extend) or counted (a start): the caller holds the lease. */
  | "written"
  /** `message:<id>` no longer exists (expired, deleted, flushed). */
  | "gone"
  /** Another consumer holds the lease now, or none does (it expired and went back). */
  | "lease-lost"
  /** The lease matches but the message is not in the claimed status. */
  | "wrong-status"
  /** The lease matches but the member is no longer in the processing set. */
  | "not-held"
  /** Another process owns the actor now (single activation): nothing of its batch is ours. */
  | "not-owner"
  /**
   * The record carries a persisted state computed from a saved state that is not the saved one
   * any more (another writer saved since, or an earlier state of the same call was not written).
   */
  | "state-stale";

/** The scripts' outcome codes. */
const OUTCOME: Readonly<Record<number, RecordOutcome>> = {
  0: "written",
  [-1]: "gone",
  [-2]: "lease-lost",
  [-3]: "wrong-status",
  [-4]: "not-held",
  [-5]: "not-owner",
  [-6]: "state-stale",
};

/** Maps one script outcome code; an unknown code is a bug in a script, reported as such. */
function outcome(code: unknown): RecordOutcome {
  const known = OUTCOME[Number(code)];
  if (!known) throw new Error(`a script returned the unknown outcome code ${String(code)}`);
  return known;
}

/** What one `claim` call did. */
export interface ClaimResult {
  /** Redis' clock at the claim, ms. */
  nowMs: number;
  /** Foreign scores remain to be fixed, or a duplicate id went back: claim again (after finishing what was claimed). */
  more: boolean;
  claimed: ClaimedMessage[];
  /** Ids marked `timeout` because their deadline passed before they started. */
  timedOut: string[];
  /** Members dead-lettered as malformed or oversized. */
  rejected: number;
  /** Completed ids that were dropped instead of running again. */
  duplicates: number;
  /** Requests the claim refused (oversize) whose senders may be waiting: answer each with an error reply. */
  refusedRequests: RefusedRequest[];
  /** The actor has a single activation and the caller is not its owner: nothing was claimed. */
  fenced: boolean;
}

/** A request the claim refused, and why. */
export interface RefusedRequest {
  id: string;
  sender: string;
  messageType: string;
  priority: Priority;
  /** The dead-letter reason (`oversize`). */
  reason: string;
  error: string;
}

/** How a claimed message ends (or goes back). */
export interface FinishRecord {
  id: string;
  /** The member as claimed (bytes). */
  member: Buffer;
  /** The lease token it was claimed with. */
  token: string;
  /** The lifecycle event from `processing`. */
  event: Extract<LifecycleEvent, "COMPLETE" | "FAIL" | "RETRY" | "RELEASE" | "EXPIRE">;
  /** Runs started, this one included (recorded in its dead letter). */
  attempts: number;
  /** The claim counted a run of it that never started: give that attempt back. */
  giveBack?: boolean;
  error?: string;
  /** Dead-letter it with this reason. */
  deadReason?: string;
  /** Put it back in the inbox at its own canonical score (RELEASE). */
  requeue?: boolean;
  /** RETRY: it waits in processing, unleased, until this time (ms, Redis clock), then returns. */
  retryAtMs?: number;
  /** Sent in the same atomic step. */
  reply?: EncodedMessage;
  /**
   * COMPLETE of a persisted actor: its state after this message, saved in the same atomic step
   * if and only if this record is written (src/state.ts).
   */
  state?: StateWrite;
}

/** A persisted state carried by a FinishRecord. */
export interface StateWrite {
  /** The `seq` of the saved state it was computed from: saved only if that is still the saved one. */
  base: number;
  /** The actor's `persist.version`. */
  version: number;
  /** The encoded state (src/state.ts, encodeState). */
  data: string;
}

/** Resolved mailbox options. */
export type MailboxConfig = Required<Omit<MailboxOptions, "durability">> & {
  durability: Required<Durability>;
};

/** Fills in the defaults of MailboxOptions. */
export function mailboxConfig(options: MailboxOptions = {}): MailboxConfig {
  return {
    messageTtlSeconds: options.messageTtlSeconds ?? 86_400,
    outboxCap: options.outboxCap ?? 1000,
    maxMessageBytes: options.maxMessageBytes ?? 1_048_576,
    leaseMs: options.leaseMs ?? 30_000,
    durability: {
      replicas: options.durability?.replicas ?? 0,
      timeoutMs: options.durability?.timeoutMs ?? 1000,
    },
  };
}

/** How many foreign-scored members or expired leases one claim call handles. */
const CLAIM_REPAIR_BATCH = 500;

/**
 * How many foreign-scored members a peek re-scores, at most, on each side of the canonical band
 * (each is re-scored once: the next peek finds it in the band).
 */
const PEEK_FOREIGN = CLAIM_REPAIR_BATCH;

/**
 * The score of a scheduled message in `queue:<app>:scheduled`: its due time (whole ms, Redis'
 * clock) plus `(4 - priority) / 8`, so that messages due in the same ms are moved into the inbox
 * CRITICAL first (a fraction in 0 … 0.375; readers floor it for the due time). src/lua/schedule.lua.
 */
export function scheduledScore(dueMs: number, priority: number): string {
  return String(dueMs + (4 - priority) / 8);
}

/** Sends, claims and finishes messages for every app over one connection (or cluster client). */
export class Mailbox {
  private readonly scripts: Scripts;
  /**
   * True on a cluster: replies and outbox copies, which live in other slots than the script's,
   * are written by separate calls (see the module comment).
   */
  readonly crossSlotSplit: boolean;
  /** The WAIT in flight on each master's connection, and the one queued behind it (durability). */
  private readonly waits = new WeakMap<Redis, { inFlight?: Promise<number>; queued?: Promise<number> }>();

  constructor(
    readonly redis: RedisClient,
    readonly keys: Keyspace,
    readonly config: MailboxConfig,
  ) {
    this.scripts = new Scripts(redis);
    this.crossSlotSplit = isCluster(redis);
  }

  /** Loads the scripts; later calls reload them if the server forgets. */
  async load(): Promise<void> {
    await this.scripts.load();
  }

  /** Encodes an envelope and checks its size; throws MessageTooLargeError. */
  encode(envelope: Envelope): EncodedMessage {
    const member = encodeEnvelope(envelope);
    const bytes = member.length > this.config.maxMessageBytes / 3 ? Buffer.byteLength(member) : 0;
    if (bytes > this.config.maxMessageBytes)
      throw new MessageTooLargeError(bytes, this.config.maxMessageBytes);
    const us = Math.round(envelope.timestamp * 1e6);
    return {
      envelope,
      member,
      canonicalScore: canonicalScore(envelope.priority, us),
      wireScore: wireScore(envelope.priority, envelope.timestamp),
    };
  }

  /**
   * The 8 per-message arguments of send.lua (and of every script that enqueues as it does:
   * timer-fire.lua): member, id, sender, recipient, message_type, timestamp, both scores.
   */
  sendArgs(m: EncodedMessage): (string | number)[] {
    const e = m.envelope;
    return [
      m.member,
      e.id,
      e.sender,
      e.recipient,
      e.message_type,
      String(e.timestamp),
      String(m.canonicalScore),
      String(m.wireScore),
    ];
  }

  /**
   * Sends messages that share one sender and one recipient, atomically; returns the positions
   * of those not sent because they are duplicates (already pending, processing or completed,
   * or earlier in this batch). With `push`, a redactor recipient also gets each one whole on its
   * reply channel (replies). Throws RedisCommandError when Redis refuses the script (`code` OOM
   * over maxmemory, NOPERM …): then nothing was sent.
   *
   * On a cluster, when the sender's outbox is in another slot, the outbox copies are written by a
   * second call once the messages are in; a failure there loses only the copies (monitoring).
   */
  async send(messages: readonly EncodedMessage[], options: { push?: boolean } = {}): Promise<number[]> {
    const first = messages[0];
    if (!first) return [];
    const { sender, recipient } = first.envelope;
    const inbox = this.keys.inbox(recipient);
    const outbox = this.keys.outbox(sender);
    const outboxApart = this.crossSlotSplit && slotOf(inbox) !== slotOf(outbox);
    const keys = [inbox, outboxApart ? inbox : outbox, this.keys.status(recipient)];
    const args: (string | number)[] = [
      this.config.messageTtlSeconds,
      outboxApart ? 0 : this.config.outboxCap,
      this.keys.channel(recipient),
      this.keys.wakeChannel(recipient) ?? "",
      options.push ? this.keys.replyChannel(recipient) : "",
      STATUS.pending,
      // A message id already scheduled, waiting, running or done is not sent again.
      `${STATUS.pending} ${STATUS.processing} ${STATUS.completed} ${STATUS.scheduled}`,
    ];
    // A trace context per message (a 9th value) only when one of them has one (tracing on).
    const traced = messages.some((m) => m.traceparent !== undefined);
    args.push(traced ? 9 : 8);
    for (const m of messages) {
      keys.push(this.keys.message(recipient, m.envelope.id));
      args.push(...this.sendArgs(m));
      if (traced) args.push(m.traceparent ?? "");
    }
    let skipped: number[];
    try {
      skipped = ((await this.scripts.run("send", keys, args)) as number[]).map(Number);
    } catch (err) {
      // OOM, NOPERM, READONLY …: a typed error that says what to do (the script wrote nothing).
      throw fromRedisReply(`send ${messages.length} message(s) to "${recipient}"`, err);
    }
    // Duplicates too: a send repeated after a ReplicationError must not resolve before a
    // replica has the message (the script touched its hash, so that write is waited for).
    await this.replicated(inbox, `send ${messages.length} message(s) to "${recipient}"`);
    if (outboxApart && this.config.outboxCap > 0) {
      await this.copyToOutbox(
        outbox,
        messages.filter((_, i) => !skipped.includes(i)),
      ).catch(() => {
        // Copies for monitoring only: the messages themselves are in.
      });
    }
    return skipped;
  }

  /**
   * Schedules one message for later (src/lua/schedule.lua): it waits in its `message:<id>`
   * hash, listed in `queue:<recipient>:scheduled` at `dueMs`, until the scheduler moves it into
   * the inbox (src/scheduler.ts); the caller then records the app in the scheduler's index.
   * Returns "duplicate" when a message with this id is already scheduled, pending, processing or
   * completed (nothing is written). The envelope's `timestamp` should be the due time.
   * @param dueMs the due time, whole ms since the epoch by Redis' clock. The hash has no TTL
   *   until it is delivered (then the usual `messageTtlSeconds`).
   * @throws RedisCommandError when Redis refuses the script (then nothing was scheduled);
   *   ReplicationError as `send`.
   */
  async schedule(m: EncodedMessage, dueMs: number): Promise<"scheduled" | "duplicate"> {
    const { id, sender, recipient, message_type, timestamp } = m.envelope;
    const what = `schedule "${message_type}" for "${recipient}"`;
    const keys = [this.keys.scheduled(recipient), this.keys.message(recipient, id)];
    let code: number;
    try {
      code = Number(
        await this.scripts.run("schedule", keys, [
          this.config.messageTtlSeconds,
          STATUS.scheduled,
          `${STATUS.pending} ${STATUS.processing} ${STATUS.completed} ${STATUS.scheduled}`,
          m.member,
          id,
          sender,
          recipient,
          message_type,
          String(timestamp),
          String(dueMs),
          m.traceparent ?? "",
          scheduledScore(dueMs, m.envelope.priority),
        ]),
      );
    } catch (err) {
      throw fromRedisReply(what, err);
    }
    await this.replicated(keys[0] as string, what);
    if (code === 1) return "scheduled";
    if (code === 0) return "duplicate";
    throw new Error(`schedule.lua returned the unknown outcome code ${code}`);
  }

  /**
   * With `durability.replicas` > 0: waits until that many replicas of the master that serves
   * `key` have every write this client sent it (WAIT, on the connection that sent them).
   * @throws ReplicationError when fewer confirm within `durability.timeoutMs`.
   */
  private async replicated(key: string, what: string): Promise<void> {
    const { replicas, timeoutMs } = this.config.durability;
    if (replicas === 0) return;
    const node = masterOf(this.redis, key);
    const acknowledged = node ? await this.waitOn(node) : 0;
    if (acknowledged < replicas) throw new ReplicationError(what, acknowledged, replicas, timeoutMs);
  }

  /**
   * One WAIT on `node`'s connection for every caller (a group commit). A WAIT covers every write
   * sent on its connection before it, and it blocks that connection while it waits: so at most
   * one is in flight per node, and those who come while it is share the next one, sent when it
   * returns. A caller then waits at most two WAITs, never one per concurrent send.
   */
  private waitOn(node: Redis): Promise<number> {
    const current = this.waits.get(node) ?? {};
    this.waits.set(node, current);
    if (!current.inFlight) {
      current.inFlight = this.sendWait(node, current);
      return current.inFlight;
    }
    current.queued ??= current.inFlight.then(() => {
      current.queued = undefined;
      current.inFlight = this.sendWait(node, current);
      return current.inFlight;
    });
    return current.queued;
  }

  private sendWait(node: Redis, state: { inFlight?: Promise<number> }): Promise<number> {
    const { replicas, timeoutMs } = this.config.durability;
    const sent: Promise<number> = node
      .wait(replicas, timeoutMs)
      .then(Number)
      // The node just became a replica (a failover: "WAIT cannot be used with replica
      // instances", "UNBLOCKED … master -> replica"): nothing is confirmed.
      .catch(() => 0)
      .finally(() => {
        if (state.inFlight === sent) state.inFlight = undefined;
      });
    return sent;
  }

  /** Adds copies of sent messages to a capped outbox (its own slot), scored by their timestamp. */
  private async copyToOutbox(outbox: string, messages: readonly EncodedMessage[]): Promise<void> {
    if (messages.length === 0) return;
    const scored: (string | number)[] = [];
    for (const m of messages) scored.push(String(m.envelope.timestamp), m.member);
    await this.redis
      .multi()
      .zadd(outbox, ...scored)
      .zremrangebyrank(outbox, 0, -(this.config.outboxCap + 1))
      .exec();
  }

  /**
   * Claims up to `max` messages of `app` under a lease named `token`. With `owner` (single
   * activation: this process's node id) the claim is refused, `fenced`, unless the app's
   * activation key names that node. With `traced` (tracing on) each claimed message's
   * `traceparent` is read from its hash in the same call.
   */
  async claim(app: string, max: number, token: string, owner = "", traced = false): Promise<ClaimResult> {
    const keys = [this.keys.inbox(app), this.keys.processing(app), this.keys.dead(app)];
    if (owner !== "") keys.push(this.keys.activation(app));
    const raw = (await this.scripts.runBuffer("claim", keys, [
      this.keys.messagePrefix(app),
      max,
      this.config.leaseMs,
      token,
      this.config.maxMessageBytes,
      this.config.messageTtlSeconds,
      STATUS.processing,
      STATUS.timedOut,
      STATUS.rejected,
      STATUS.completed,
      STATUS.released,
      CLAIM_REPAIR_BATCH,
      owner,
      traced ? "1" : "",
    ])) as [
      number,
      number,
      (Buffer | number)[],
      Buffer[],
      number,
      number,
      (Buffer | number)[],
      number,
      Buffer[]?,
    ];
    const flat = raw[2];
    const traces = raw[8];
    const claimed: ClaimedMessage[] = [];
    for (let i = 0; i < flat.length; i += 4) {
      claimed.push({
        member: flat[i] as Buffer,
        runsBefore: Number(flat[i + 1]),
        counted: i === 0,
        // The claim refuses ids that are not valid UTF-8, so this decoding is exact.
        id: String(flat[i + 2]),
        priority: Number(flat[i + 3]) as Priority,
      });
    }
    if (traces) {
      for (const [i, message] of claimed.entries()) {
        const traceparent = traces[i]?.toString("latin1");
        if (traceparent) message.traceparent = traceparent;
      }
    }
    const answers = raw[6] ?? [];
    const refusedRequests: RefusedRequest[] = [];
    for (let i = 0; i < answers.length; i += 6) {
      refusedRequests.push({
        id: String(answers[i]),
        sender: String(answers[i + 1]),
        messageType: String(answers[i + 2]),
        priority: Number(answers[i + 3]) as Priority,
        reason: String(answers[i + 4]),
        error: String(answers[i + 5]),
      });
    }
    return {
      nowMs: Number(raw[0]),
      more: raw[1] === 1,
      claimed,
      timedOut: raw[3].map(String),
      rejected: Number(raw[4]),
      duplicates: Number(raw[5]),
      refusedRequests,
      fenced: raw[7] === 1,
    };
  }

  /**
   * Writes how claimed messages of `app` ended and, with `start`, counts the run of the claimed
   * message that starts next, in one atomic call (the call is written to the connection at once:
   * it reaches Redis even if the handler that starts next kills the process). Returns, per
   * record, whether it was written or why not (the lease moved on, the hash is gone …): a record
   * is written only by the lease holder; and the start's outcome: the runs started, this one
   * included, or why it is not held any more.
   *
   * On a cluster the replies are sent first, each by the send script in its recipient's slot,
   * and the records are written once they are in: a reply is durable before its request is
   * marked done, and a repeat after a crash is a duplicate (its id comes from the request's).
   * Then the call is not on the connection at once: a caller that must know the outcomes are
   * in before it starts the next handler awaits it.
   */
  async finish(
    app: string,
    records: readonly FinishRecord[],
    start?: { id: string; token: string },
  ): Promise<{ outcomes: RecordOutcome[]; started?: number | Exclude<RecordOutcome, "written"> }> {
    if (records.length === 0 && !start) return { outcomes: [] };
    if (this.crossSlotSplit && records.some((r) => r.reply)) {
      // A reply from a run whose state finish would refuse must not go out: checked first, in
      // the app's slot (see stateRefusals for the window that remains).
      const refused = records.some((r) => r.reply && r.state) ? await this.stateRefusals(app, records) : [];
      // Each reply in its own recipient's slot; sends to different recipients are independent.
      await Promise.all(
        records.flatMap((r, i) => (r.reply && !refused[i] ? [this.send([r.reply], { push: true })] : [])),
      );
      records = records.map((r) => (r.reply ? { ...r, reply: undefined } : r));
    }
    const keys = [
      this.keys.processing(app),
      this.keys.inbox(app),
      this.keys.dead(app),
      // In the app's slot: a state goes with its record's finish, on one server and on a cluster.
      this.keys.state(app),
    ];
    const args: (string | number | Buffer)[] = [
      this.config.messageTtlSeconds,
      this.config.outboxCap,
      STATUS.pending,
      STATUS.processing,
      start ? start.token : "",
    ];
    if (start) keys.push(this.keys.message(app, start.id));
    for (const r of records) {
      keys.push(this.keys.message(app, r.id));
      args.push(
        r.id,
        r.member,
        r.token,
        nextStatus(STATUS.processing, r.event),
        r.error ?? "",
        r.deadReason ?? "",
        r.requeue ? "1" : "",
        r.retryAtMs === undefined ? "" : String(Math.round(r.retryAtMs)),
        r.attempts,
        r.giveBack ? "1" : "0",
        r.reply ? "1" : "0",
        r.state ? r.state.base : "",
        r.state ? r.state.version : "",
        r.state ? r.state.data : "",
      );
      if (r.reply) {
        const e = r.reply.envelope;
        keys.push(
          this.keys.inbox(e.recipient),
          this.keys.message(e.recipient, e.id),
          this.keys.outbox(e.sender),
          this.keys.status(e.recipient),
        );
        args.push(
          ...this.sendArgs(r.reply),
          this.keys.channel(e.recipient),
          this.keys.wakeChannel(e.recipient) ?? "",
          this.keys.replyChannel(e.recipient),
        );
      }
    }
    const result = (await this.scripts.run("finish", keys, args)) as number[];
    if (records.length > 0)
      await this.replicated(keys[0] as string, `finish ${records.length} message(s) of "${app}"`);
    if (!start) return { outcomes: result.map(outcome) };
    const code = Number(result[0]);
    return {
      started: code > 0 ? code : (outcome(code) as Exclude<RecordOutcome, "written">),
      outcomes: result.slice(1).map(outcome),
    };
  }

  /**
   * Per record, true when it carries a persisted state that finish.lua would refuse now (its
   * lease is lost, or the saved state's seq moved on): state-check.lua, reads only, in `app`'s
   * slot. On a cluster a reply is sent before its request's record is finished, so a reply goes
   * out only when this says its run's state will be saved. The window that remains: a lease
   * lost, or a state saved by another writer, between this check and the finish (one round trip
   * plus the reply's send; only a process stalled past its lease, or a hand-written state, does
   * that): the reply is then out and the state refused, and the request runs again elsewhere.
   */
  private async stateRefusals(app: string, records: readonly FinishRecord[]): Promise<boolean[]> {
    const keys = [this.keys.state(app)];
    const args: (string | number)[] = [STATUS.processing];
    const carrying: number[] = [];
    for (const [i, r] of records.entries()) {
      if (!r.state) continue;
      carrying.push(i);
      keys.push(this.keys.message(app, r.id));
      args.push(r.token, r.state.base);
    }
    const codes = (await this.scripts.run("state-check", keys, args)) as number[];
    const refused = records.map(() => false);
    for (const [j, i] of carrying.entries()) refused[i] = outcome(codes[j]) !== "written";
    return refused;
  }

  /**
   * The highest priority waiting in `app`'s inbox, or null when it is empty. Members scored by
   * someone else (the peers' `priority * 1000 + timestamp`, a bare ZADD) are given their
   * canonical score first, as the next claim would, so they count for the priority they declare
   * whatever their score.
   */
  async topPriority(app: string): Promise<Priority | null> {
    const top = Number(await this.scripts.run("peek", [this.keys.inbox(app)], [PEEK_FOREIGN]));
    return top === 0 ? null : (top as Priority);
  }

  /**
   * Extends the leases of messages held under `token`; returns, per message, "written" when it
   * is still held (and now leased for another `leaseMs`), else why it is not. With `owner`
   * (single activation: this process's node id) nothing is extended unless the actor's
   * activation key names it ("not-owner" for every message).
   */
  async extend(
    app: string,
    token: string,
    held: readonly { id: string; member: Buffer }[],
    owner = "",
  ): Promise<RecordOutcome[]> {
    if (held.length === 0) return [];
    const keys = [this.keys.processing(app)];
    if (owner !== "") keys.push(this.keys.activation(app));
    const args: (string | number | Buffer)[] = [
      this.keys.messagePrefix(app),
      token,
      this.config.leaseMs,
      owner,
    ];
    for (const h of held) args.push(h.id, h.member);
    return ((await this.scripts.run("extend", keys, args)) as number[]).map(outcome);
  }

  /**
   * Returns to the inbox what sits in `app`'s processing set with an expired lease or a lease
   * held by a dead process; returns how many. `selfNode`, the caller's process, is alive by
   * definition: its leases are never taken for a dead holder's. On one server the script reads
   * the holders' heartbeat keys itself; on a cluster (those keys live in other slots) it names
   * the holders it saw, their heartbeat keys are read here, and a second call returns the
   * messages of those found dead. The leases of `dead` (a previous owner this process took the
   * actor over from) are taken back whatever their heartbeat says.
   */
  async recover(app: string, selfNode: string, dead: readonly string[] = []): Promise<number> {
    const call = async (judged: string) => {
      const [released, unknown] = (await this.scripts.run(
        "recover",
        [this.keys.inbox(app), this.keys.processing(app)],
        [
          this.keys.messagePrefix(app),
          this.keys.heartbeat(""),
          STATUS.released,
          CLAIM_REPAIR_BATCH,
          selfNode,
          judged,
        ],
      )) as [number, string[]];
      return { released: Number(released), unknown: unknown.map(String) };
    };
    // Nodes known dead (a previous owner taken over from) lose their leases whatever their
    // heartbeat says now: a frozen owner may have resumed and beaten again meanwhile.
    if (dead.length > 0)
      return (await call(JSON.stringify(dead))).released + (await this.recover(app, selfNode));
    if (!this.crossSlotSplit) return (await call("")).released;
    const first = await call("[]");
    if (first.unknown.length === 0) return first.released;
    const alive = await existsEach(
      this.redis,
      first.unknown.map((node) => this.keys.heartbeat(node)),
    );
    const found = first.unknown.filter((_, i) => !alive[i]);
    if (found.length === 0) return first.released;
    return first.released + (await call(JSON.stringify(found))).released;
  }
}
