/**
 * The mailbox: the Redis side of sending, claiming and finishing messages, one Lua command
 * each (src/lua). Statuses written by the scripts come from the lifecycle machine.
 */
import type { Redis } from "ioredis";
import { type Envelope, encodeEnvelope } from "./envelope.js";
import { MessageTooLargeError } from "./errors.js";
import type { Keyspace } from "./keyspace.js";
import { type LifecycleEvent, nextStatus, STATUS } from "./lifecycle.js";
import { canonicalScore, isPriority, type Priority, priorityOfScore, wireScore } from "./priority.js";
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
}

/** A message encoded for the wire, with both of its possible inbox scores. */
export interface EncodedMessage {
  envelope: Envelope;
  member: string;
  canonicalScore: number;
  wireScore: number;
}

/** A message handed out by `claim`. */
export interface ClaimedMessage {
  /** The inbox member, exactly as it was stored. */
  member: string;
  /** How many times it has been claimed, this time included. */
  attempts: number;
  /** Its id (the claim checked it has one). */
  id: string;
}

/** What one `claim` call did. */
export interface ClaimResult {
  /** Redis' clock at the claim, ms. */
  nowMs: number;
  /** Foreign scores remain to be fixed: claim again before trusting the order. */
  more: boolean;
  claimed: ClaimedMessage[];
  /** Ids marked `timeout` because their deadline passed before they started. */
  timedOut: string[];
  /** Members dead-lettered as malformed or oversized. */
  rejected: number;
  /** Completed ids that were dropped instead of running again. */
  duplicates: number;
}

/** How a claimed message ends (or goes back). */
export interface FinishRecord {
  id: string;
  member: string;
  /** The lease token it was claimed with. */
  token: string;
  /** The lifecycle event from `processing`. */
  event: Extract<LifecycleEvent, "COMPLETE" | "FAIL" | "RETRY" | "RELEASE" | "EXPIRE">;
  attempts: number;
  error?: string;
  /** Dead-letter it with this reason. */
  deadReason?: string;
  /** Put it back in the inbox at its own canonical score (RELEASE). */
  requeue?: boolean;
  /** RETRY: it waits in processing, unleased, until this time (ms, Redis clock), then returns. */
  retryAtMs?: number;
  /** Sent in the same atomic step. */
  reply?: EncodedMessage;
}

/** Resolved mailbox options. */
export type MailboxConfig = Required<MailboxOptions>;

/** Fills in the defaults of MailboxOptions. */
export function mailboxConfig(options: MailboxOptions = {}): MailboxConfig {
  return {
    messageTtlSeconds: options.messageTtlSeconds ?? 86_400,
    outboxCap: options.outboxCap ?? 1000,
    maxMessageBytes: options.maxMessageBytes ?? 1_048_576,
    leaseMs: options.leaseMs ?? 30_000,
  };
}

/** How many foreign-scored members or expired leases one claim call handles. */
const CLAIM_REPAIR_BATCH = 500;

/** Sends, claims and finishes messages for every app over one connection. */
export class Mailbox {
  private readonly scripts: Scripts;

  constructor(
    readonly redis: Redis,
    readonly keys: Keyspace,
    readonly config: MailboxConfig,
  ) {
    this.scripts = new Scripts(redis);
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

  private sendArgs(m: EncodedMessage): (string | number)[] {
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
   * or earlier in this batch).
   */
  async send(messages: readonly EncodedMessage[]): Promise<number[]> {
    const first = messages[0];
    if (!first) return [];
    const { sender, recipient } = first.envelope;
    const keys = [this.keys.inbox(recipient), this.keys.outbox(sender), this.keys.status(recipient)];
    const args: (string | number)[] = [
      this.config.messageTtlSeconds,
      this.config.outboxCap,
      this.keys.channel(recipient),
      STATUS.pending,
      // A message id already waiting, running or done is not sent again.
      `${STATUS.pending} ${STATUS.processing} ${STATUS.completed}`,
    ];
    for (const m of messages) {
      keys.push(this.keys.message(m.envelope.id));
      args.push(...this.sendArgs(m));
    }
    return ((await this.scripts.run("send", keys, args)) as number[]).map(Number);
  }

  /** Claims up to `max` messages of `app` under a lease named `token`. */
  async claim(app: string, max: number, token: string): Promise<ClaimResult> {
    const raw = (await this.scripts.run(
      "claim",
      [this.keys.inbox(app), this.keys.processing(app), this.keys.dead(app)],
      [
        this.keys.messagePrefix(),
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
      ],
    )) as [number, number, (string | number)[], string[], number, number];
    const flat = raw[2];
    const claimed: ClaimedMessage[] = [];
    for (let i = 0; i < flat.length; i += 3) {
      claimed.push({ member: String(flat[i]), attempts: Number(flat[i + 1]), id: String(flat[i + 2]) });
    }
    return {
      nowMs: Number(raw[0]),
      more: raw[1] === 1,
      claimed,
      timedOut: raw[3],
      rejected: Number(raw[4]),
      duplicates: Number(raw[5]),
    };
  }

  /** Writes how claimed messages of `app` ended; returns, per record, whether the lease was still ours. */
  async finish(app: string, records: readonly FinishRecord[]): Promise<boolean[]> {
    if (records.length === 0) return [];
    const keys = [this.keys.processing(app), this.keys.inbox(app), this.keys.dead(app)];
    const args: (string | number)[] = [this.config.messageTtlSeconds, this.config.outboxCap, STATUS.pending];
    for (const r of records) {
      keys.push(this.keys.message(r.id));
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
        r.event === "RELEASE" ? 1 : 0,
        r.reply ? "1" : "0",
      );
      if (r.reply) {
        const e = r.reply.envelope;
        keys.push(
          this.keys.inbox(e.recipient),
          this.keys.message(e.id),
          this.keys.outbox(e.sender),
          this.keys.status(e.recipient),
        );
        args.push(
          ...this.sendArgs(r.reply),
          this.keys.channel(e.recipient),
          this.keys.replyChannel(e.recipient),
        );
      }
    }
    const result = (await this.scripts.run("finish", keys, args)) as number[];
    return result.map((n) => n === 1);
  }

  /**
   * The priority of the message at the top of `app`'s inbox, or null when it is empty. A
   * member with a foreign score declares its priority in its JSON (it is re-scored at claim).
   */
  async topPriority(app: string): Promise<Priority | null> {
    const [member, score] = await this.redis.zrevrange(this.keys.inbox(app), 0, 0, "WITHSCORES");
    if (member === undefined) return null;
    const fromScore = priorityOfScore(Number(score));
    if (fromScore !== null) return fromScore;
    try {
      const priority = (JSON.parse(member) as { priority?: unknown }).priority;
      return isPriority(priority) ? priority : null;
    } catch {
      return null;
    }
  }

  /** Extends the leases of messages still held under `token`; returns how many were extended. */
  async extend(app: string, token: string, held: readonly { id: string; member: string }[]): Promise<number> {
    if (held.length === 0) return 0;
    const args: (string | number)[] = [this.keys.messagePrefix(), token, this.config.leaseMs];
    for (const h of held) args.push(h.id, h.member);
    return Number(await this.scripts.run("extend", [this.keys.processing(app)], args));
  }

  /**
   * Returns to the inbox what sits in `app`'s processing set with an expired lease or a lease
   * held by a dead process; returns how many.
   */
  async recover(app: string): Promise<number> {
    return Number(
      await this.scripts.run(
        "recover",
        [this.keys.inbox(app), this.keys.processing(app)],
        [this.keys.messagePrefix(), this.keys.heartbeat(""), STATUS.released, CLAIM_REPAIR_BATCH],
      ),
    );
  }
}
