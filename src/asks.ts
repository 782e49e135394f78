/**
 * Requests waiting for their reply. A reply is recognised by `reply_to`, or, for peers that
 * never set it, by an ask's `match` function. An error reply (`error_<request id>` with
 * `"status": "error"`, src/error-replies.ts) rejects its ask with AskFailedError, even from a
 * peer that leaves `reply_to` out. An ask that times out is forgotten at once, so a late reply
 * finds nothing to resolve and costs no memory.
 */
import type { HostClock, TimerHandle } from "./clock.js";
import type { Envelope } from "./envelope.js";
import { readErrorReply, requestIdOfErrorReply } from "./error-replies.js";
import { AskFailedError, AskTimeoutError } from "./errors.js";

interface PendingAsk {
  id: string;
  recipient: string;
  messageType: string;
  resolve(payload: unknown): void;
  reject(err: Error): void;
  timer: TimerHandle;
  match?: (message: Envelope) => boolean;
}

/** How many recently settling replies are remembered, so their inbox copies are recognised. */
const SETTLED_MEMORY = 10_000;

/** The asks in flight of one system. */
export class PendingAsks {
  private readonly byId = new Map<string, PendingAsk>();
  /**
   * Ids of replies that settled an ask when they were pushed; the same reply then arrives in
   * the inbox too and must be consumed quietly, not offered to other asks or to handlers.
   */
  private readonly settled = new Set<string>();
  /** Asks with a match function, oldest first. */
  private readonly matchers = new Set<PendingAsk>();

  /** @param clock what the timeouts run on (the system's `clock` option). */
  constructor(private readonly clock: HostClock) {}

  /** How many asks are waiting. */
  get size(): number {
    return this.byId.size;
  }

  /**
   * Registers request `id` before it is sent; the promise settles with the reply's payload, or
   * rejects with AskTimeoutError after `timeoutMs`, AskFailedError on an error reply, or the
   * error given to `fail` / `rejectAll`. The caller must attach its handlers before it awaits
   * anything else: the timeout may fire meanwhile.
   */
  wait(
    id: string,
    recipient: string,
    messageType: string,
    timeoutMs: number,
    match?: (message: Envelope) => boolean,
  ): Promise<unknown> {
    return new Promise((resolve, reject) => {
      const pending: PendingAsk = {
        id,
        recipient,
        messageType,
        resolve,
        reject,
        match,
        timer: this.clock.setTimeout(() => {
          this.forget(pending);
          reject(new AskTimeoutError(recipient, messageType, id, timeoutMs));
        }, timeoutMs),
      };
      this.byId.set(id, pending);
      if (match) this.matchers.add(pending);
    });
  }

  /**
   * Settles the ask `message` answers; true when it did, or when `message` is the inbox copy of
   * a reply that already settled one; false when it answers none (a late or stray reply).
   */
  offer(message: Envelope): boolean {
    if (this.settled.delete(message.id)) return true;
    let pending = message.reply_to === null ? undefined : this.byId.get(message.reply_to);
    if (!pending) {
      // A peer's error reply names its request in its id only.
      const requestId = requestIdOfErrorReply(message.id);
      const candidate = requestId === undefined ? undefined : this.byId.get(requestId);
      if (candidate && readErrorReply(message, candidate.id)) pending = candidate;
    }
    if (!pending) {
      for (const candidate of this.matchers) {
        let matched = false;
        try {
          matched = candidate.match?.(message) === true;
        } catch {
          matched = false;
        }
        if (matched) {
          pending = candidate;
          break;
        }
      }
    }
    if (!pending) return false;
    this.forget(pending);
    const failure = readErrorReply(message, pending.id);
    if (failure) {
      pending.reject(
        new AskFailedError(
          pending.recipient,
          pending.messageType,
          pending.id,
          failure.reason,
          failure.message,
        ),
      );
    } else {
      pending.resolve(message.payload);
    }
    return true;
  }

  /** Like `offer`, for a reply pushed on the reply channel, whose inbox copy comes later. */
  offerPushed(message: Envelope): void {
    if (!this.offer(message)) return;
    this.settled.add(message.id);
    // Bounded: the oldest go first (a Set iterates in insertion order).
    if (this.settled.size > SETTLED_MEMORY) {
      for (const id of this.settled) {
        this.settled.delete(id);
        if (this.settled.size <= SETTLED_MEMORY) break;
      }
    }
  }

  /** The recipient and message type of the ask waiting for request `id`'s reply, if one is. */
  waiting(id: string): { recipient: string; messageType: string } | undefined {
    const pending = this.byId.get(id);
    return pending && { recipient: pending.recipient, messageType: pending.messageType };
  }

  /** Fails one ask now (its request could not be sent, or it was cancelled). */
  fail(id: string, err: Error): void {
    const pending = this.byId.get(id);
    if (!pending) return;
    this.forget(pending);
    pending.reject(err);
  }

  /** Rejects every ask (the system is shutting down). */
  rejectAll(err: Error): void {
    for (const pending of [...this.byId.values()]) {
      this.forget(pending);
      pending.reject(err);
    }
  }

  private forget(pending: PendingAsk): void {
    this.clock.clearTimeout(pending.timer);
    this.byId.delete(pending.id);
    this.matchers.delete(pending);
  }
}
