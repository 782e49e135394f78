/**
 * A running incarnation of an actor: it claims from the actor's inbox, runs one message at a
 * time through the handlers, and writes each outcome back as a lifecycle event. Outcomes are
 * buffered briefly and written in one script call (a reply is written at once), so a fast
 * actor pays about one round trip per claimed batch, not per message. While it holds claimed
 * messages it keeps their leases alive. A handler's exception follows the actor's failure
 * directive: the cell may end itself and report the crash to its supervisor.
 */
import type { Logger } from "pino";
import {
  type ActorContext,
  type ActorDefinition,
  type ActorRef,
  DEFAULT_MAX_ATTEMPTS,
  DEFAULT_RETRY_BACKOFF,
  type FailureDirective,
  type SetupContext,
} from "./actor.js";
import { backoffDelay } from "./backoff.js";
import type { Clock, HostClock, TimerHandle } from "./clock.js";
import { settledBefore } from "./deadline.js";
import { decodeEnvelope, type Envelope, replyIdOf } from "./envelope.js";
import { errorReply, type FailedRequest, failedRequest } from "./error-replies.js";
import {
  HandlerTimeoutError,
  LeaseLostError,
  ReplicationError,
  StateNotSavedError,
  SystemStoppedError,
} from "./errors.js";
import type { SystemEventEmitter } from "./events.js";
import type {
  ClaimedMessage,
  ClaimResult,
  EncodedMessage,
  FinishRecord,
  Mailbox,
  RecordOutcome,
  RefusedRequest,
  StateWrite,
} from "./mailbox.js";
import type { Priority } from "./priority.js";
import { validate } from "./schema.js";
import { decodeState, encodeState, loadState, type Persistence, persistence } from "./state.js";
import type { ExitReason } from "./supervisor.js";
import type { ActorSystem } from "./system.js";
import { ActorTimers, type TimerHost } from "./timers.js";
import type { OpenSpan, Tracing } from "./tracing.js";
import type { Wakeable } from "./wakeups.js";

/** What a cell needs from the system that runs it. */
export interface CellHost {
  readonly mailbox: Mailbox;
  readonly system: ActorSystem;
  readonly log: Logger;
  readonly nodeId: string;
  readonly claimBatch: number;
  readonly events: SystemEventEmitter;
  /** The system's clock (Redis' time): replies are stamped with it. */
  readonly clock: Clock;
  /**
   * The clock of host-side timers (the system's `clock` option): handler timeouts, the wake-up
   * retry after a failed claim, idle time (`lastActiveAt`), actor timers. Real time on Redis'
   * clock by default. Lease renewal and the finish linger stay on real time (src/clock.ts).
   */
  readonly hostClock: HostClock;
  /** A ref to `target` whose messages are sent as `sender`. */
  refFrom(sender: string, target: string): ActorRef;
  /** Wakes whichever cell serves `app` after `delayMs` (a retry comes due). */
  wakeLater(app: string, delayMs: number): void;
  /** Reports a message this cell sent (a reply). */
  sent(envelope: Envelope): void;
  /** The system's spans (src/tracing.ts); undefined when tracing is off. */
  readonly tracing?: Tracing;
  /** The scheduled send's path, for a durable timer's reminder (src/timers.ts, TimerHost). */
  scheduleMessage: TimerHost["scheduleMessage"];
  /** The system's scheduler: a waiting reminder is cancelled through it (TimerHost). */
  readonly scheduler: TimerHost["scheduler"];
}

/** How a cell is set up by its system. */
export interface CellOptions {
  /** Offered each message first; true means it was consumed (ask replies). */
  intercept?: (message: Envelope) => boolean;
  /**
   * Told once when a handler's failure ends this incarnation (`cellExited`), or when its claim
   * was refused because another process owns the actor now (`cellFenced`, single activation).
   */
  exits?: { cellExited(cell: ActorCell, reason: ExitReason): void; cellFenced?(cell: ActorCell): void };
  /** This process's node id when the actor has a single activation: claims are fenced by it. */
  owner?: string;
  /** Lease length, ms. */
  leaseMs: number;
  /**
   * How often leases are renewed while held, and how old their last confirmation may be when a
   * message starts (else it is confirmed first), ms: at most a third of the lease, and at most
   * one heartbeat period, so that a process frozen long enough to be taken for dead finds out
   * before it starts anything else.
   */
  confirmMs: number;
}

/** Where a cell is in its life. */
export type CellState = "starting" | "running" | "stopping" | "stopped";

/** Outcomes older than this are written without waiting for the rest of the batch. */
const FINISH_LINGER_MS = 5;

/** The empty batch, shared by every idle cell. */
const NOTHING: readonly ClaimedMessage[] = [];

/** After the stop deadline, how long writing the last outcomes may still take. */
const STOP_GRACE_MS = 1000;

/** A handler's exception that ends this incarnation. */
interface Crash {
  directive: Exclude<FailureDirective, "resume">;
  error: Error;
}

let incarnations = 0;

/**
 * One handler run's handle: the abort side of its ctx.signal (the controller exists once the
 * signal is read), and whether its ctx is detached from the cell.
 */
class Abort {
  private controller: AbortController | undefined;
  /**
   * Set once the run failed or timed out: from then on its ctx.state reads and assigns this
   * snapshot (the object the run worked on), never the cell's state, so a handler still running
   * after its timeout (a zombie) cannot change what the next message sees or saves. A persisted
   * actor's state is rolled back to a freshly decoded object at the failure, so what the zombie
   * changes in place through a reference it kept is not the cell's either.
   */
  detached: { state: unknown } | undefined;

  get signal(): AbortSignal {
    this.controller ??= new AbortController();
    return this.controller.signal;
  }

  abort(reason: Error): void {
    this.controller?.abort(reason);
  }
}

/**
 * `table[key]` when `key` is the table's own: a message type comes from the wire and must
 * never find `constructor`, `toString` and the like on the prototype.
 */
function ownEntry<T>(
  table: Record<string, T> | Partial<Record<string, T>> | undefined,
  key: string,
): T | undefined {
  return table && Object.hasOwn(table, key) ? table[key] : undefined;
}

function asError(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err));
}

/** One running incarnation of an actor. */
export class ActorCell implements Wakeable {
  state: CellState = "starting";
  readonly id: string;
  private actorState: unknown;
  /** `persist`, resolved: the state is saved with each completed message (src/state.ts). */
  private readonly persisted: Persistence | undefined;
  /** The `seq` of the last state this incarnation loaded, or handed to Redis to save. */
  private stateSeq = 0;
  /**
   * The encoding of the state as of the end of the last run that succeeded: a message's (the
   * state handed to Redis) or a broadcast's (saved with the next completed message). A failed
   * run's changes to ctx.state are rolled back to it.
   */
  private stateData: string | undefined;
  /** A state handed to Redis was not saved: the incarnation ends, to restart from the saved one. */
  private notSaved: StateNotSavedError | undefined;
  private readonly incarnation: number;
  private leaseToken: string | undefined;
  // Created on first use: an idle actor should cost as little memory as possible.
  private logger: Logger | undefined;
  private selfRef: ActorRef | undefined;
  private draining: Promise<void> | undefined;
  private again = false;
  private retryTimer: TimerHandle | undefined;
  private leaseTimer: NodeJS.Timeout | undefined;
  // Allocated on first use: an idle actor should cost as little memory as possible.
  private broadcasts: Envelope[] | undefined;
  private buffered: FinishRecord[] | undefined;
  private bufferedSince = 0;
  private lingerTimer: NodeJS.Timeout | undefined;
  private writes: Set<Promise<void>> | undefined;
  /** A look at the inbox's top priority in flight (started by a wake-up while draining). */
  private peeking: Promise<void> | undefined;
  /** Another wake-up came while a look was in flight: look again when it returns. */
  private peekAgain = false;
  /** A claim is in flight. */
  private claiming = false;
  /** A wake-up came while a claim was in flight. */
  private wokenDuringClaim = false;
  /** The highest priority seen waiting by the looks since the last message started. */
  private peekTop: Priority | null = null;
  /** performance.now() when the last claim or renewal that succeeded was sent: leases run from then. */
  private renewedAt = 0;
  /** A lease renewal in flight. */
  private renewal: Promise<void> | undefined;
  /** Ids of the claimed batch that this cell no longer holds (their lease moved on). */
  private lost: Set<string> | undefined;
  /** The message whose handling has started and not ended. */
  private inHand: ClaimedMessage | undefined;
  /** Tracing on: the last claim that handed out messages (a receive span, ended). */
  private claimSpan: OpenSpan | undefined;
  /** Tracing on: the process span of the message in hand, once it is the actor's business. */
  private processSpan: OpenSpan | undefined;
  private readonly intercept: CellOptions["intercept"];
  private readonly exits: CellOptions["exits"];
  private readonly leaseMs: number;
  private readonly confirmMs: number;
  private readonly owner: string;
  /** The last claim was refused: another process owns the actor now. */
  private fenced = false;
  /**
   * When this incarnation started or last finished draining its inbox, on the host clock
   * (`host.hostClock.now()`, ms): family pools passivate instances idle long enough.
   */
  lastActiveAt: number;
  /** The abort side of the running message handler's ctx.signal. */
  private running: Abort | undefined;
  /** This incarnation's durable timers (src/timers.ts), created on first use. */
  private actorTimers: ActorTimers | undefined;
  /** The claimed batch and how far into it the cell is: what it holds leases on. */
  private batch: readonly ClaimedMessage[] = NOTHING;
  private position = 0;

  constructor(
    private readonly host: CellHost,
    readonly definition: ActorDefinition,
    options: CellOptions,
  ) {
    // Copied into fields rather than kept as an object: one allocation less per idle actor.
    this.intercept = options.intercept;
    this.exits = options.exits;
    this.leaseMs = options.leaseMs;
    this.confirmMs = Math.min(options.confirmMs, options.leaseMs / 3);
    this.owner = options.owner ?? "";
    this.id = definition.id;
    this.persisted = persistence(definition.persist);
    this.lastActiveAt = host.hostClock.now();
    incarnations += 1;
    this.incarnation = incarnations;
  }

  /** Names this incarnation's leases: "<node>/<n>", so a dead node's leases can be told apart. */
  private get token(): string {
    this.leaseToken ??= `${this.host.nodeId}/${this.incarnation}`;
    return this.leaseToken;
  }

  /** A logger bound to this actor. */
  get log(): Logger {
    this.logger ??= this.host.log.child({ actor: this.id });
    return this.logger;
  }

  private get self(): ActorRef {
    this.selfRef ??= this.host.refFrom(this.id, this.id);
    return this.selfRef;
  }

  /** True when idle: running and not draining. */
  get idle(): boolean {
    return this.state === "running" && this.draining === undefined;
  }

  /** This incarnation's durable timers (ctx.timers), created on first use. */
  private get timers(): ActorTimers {
    this.actorTimers ??= new ActorTimers(this.host, this.id, () => this.log);
    return this.actorTimers;
  }

  private setupContext(): SetupContext<never> {
    return {
      self: this.self as never,
      log: this.log,
      system: this.host.system,
      ref: (id: string) => this.host.refFrom(this.id, id) as never,
      timers: this.timers as never,
    };
  }

  /**
   * Runs `setup` and starts serving. A persisted actor's saved state is loaded first (on the
   * mailbox's connection, so after every outcome an earlier incarnation here wrote) and handed to
   * setup as `ctx.saved`; without a setup, it is the state. Throws StateLoadError when it cannot
   * be loaded, and the errors of encodeState when setup's state could never be saved.
   */
  async start(): Promise<void> {
    let saved: unknown;
    const persisted = this.persisted;
    if (persisted) {
      const { mailbox } = this.host;
      const loaded = await loadState(mailbox.redis, mailbox.keys.state(this.id), this.id, persisted);
      saved = loaded.saved;
      this.stateSeq = loaded.seq;
    }
    const setup = this.definition.setup;
    this.actorState = setup ? await setup({ ...this.setupContext(), saved }) : saved;
    // What a failed first message rolls back to; and a state that can never be saved fails now.
    if (persisted) this.stateData = encodeState(this.id, this.actorState, persisted);
    this.state = "running";
    this.wake();
    // Durable timers: ticks missed while the actor was down are sent in the background (start
    // does not wait for thousands of them), then the cell is woken for them, whatever path their
    // wake-ups took (a family instance's may come while it is still being activated).
    this.timers
      .run()
      .then(() => this.wake())
      .catch((err: unknown) => this.log.error({ err }, "durable timers failed to start"));
  }

  /**
   * A family instance was passivated (after `stop`, its activation still held): its next timer
   * tick is left in Redis as a reminder that activates it again (ActorTimers.remind).
   * @throws RedisCommandError when Redis refuses (then no reminder is waiting).
   */
  async remindTimers(): Promise<void> {
    await this.timers.remind();
  }

  /** Its durable timers changed in Redis (another process started or cancelled one): re-arm. */
  timersChanged(): void {
    if (this.state === "running") this.actorTimers?.changed();
  }

  /** Runs the definition's `teardown`, once per incarnation. */
  private async teardown(): Promise<void> {
    // Every end of an incarnation comes here: its durable timers stop firing from this process.
    this.actorTimers?.stop();
    const teardown = this.definition.teardown;
    if (!teardown) return;
    try {
      await teardown({ ...this.setupContext(), state: this.actorState });
    } catch (err) {
      this.log.error({ err }, "teardown failed");
    }
  }

  /** Claims and runs whatever is in the inbox (or notes that it must look again). */
  wake(): void {
    if (this.state !== "running") return;
    if (this.draining) {
      this.again = true;
      // Only something still to start in the claimed batch can be outranked: with nothing left
      // after the message in hand, the next claim takes the highest anyway. A wake-up during a
      // claim is looked into once the claim returns (what it brings may have missed the claim).
      if (this.claiming) this.wokenDuringClaim = true;
      else if (this.batch.length - this.position > 1) this.lookAtInbox();
      return;
    }
    // Leases are renewed only while the cell holds claimed messages, i.e. while it drains.
    this.leaseTimer = setInterval(() => void this.extendLeases(), Math.max(50, this.confirmMs));
    this.leaseTimer.unref();
    this.draining = this.drain().finally(() => {
      clearInterval(this.leaseTimer);
      this.leaseTimer = undefined;
      this.draining = undefined;
      this.lastActiveAt = this.host.hostClock.now();
    });
  }

  /** Queues a broadcast for this actor (see ActorDefinition.broadcasts). */
  deliverBroadcast(message: Envelope): void {
    this.broadcasts ??= [];
    this.broadcasts.push(message);
    this.wake();
  }

  /**
   * Stops serving: the message in hand may finish until `deadline`, the rest of the claimed
   * batch goes back to the inbox at once.
   */
  async stop(deadlineMs: number): Promise<void> {
    if (this.state === "stopped") return;
    this.state = "stopping";
    this.actorTimers?.stop();
    this.host.hostClock.clearTimeout(this.retryTimer);
    const draining = this.draining;
    if (draining) {
      const timedOut = !(await settledBefore(draining, deadlineMs));
      if (timedOut) {
        this.running?.abort(new SystemStoppedError("finish a handler"));
        // The handler is still running; hand its message (and any rest of the batch) back now.
        for (const held of this.releaseHeld()) {
          this.log.warn({ msgId: held.id }, "handler still running at stop; message released");
        }
      }
    }
    clearInterval(this.leaseTimer);
    // Bounded: with Redis unreachable the outcomes cannot be written, and the leases will
    // bring the messages back instead.
    if (!(await settledBefore(this.flush(), deadlineMs + STOP_GRACE_MS))) {
      this.log.warn("could not write the last outcomes before the stop deadline; their leases will expire");
    }
    this.state = "stopped";
    await this.teardown();
  }

  private async drain(): Promise<void> {
    let crash: Crash | undefined;
    try {
      do {
        this.again = false;
        await this.runBroadcasts();
        let more = true;
        while (more && this.state === "running" && !crash && !this.fenced && !this.notSaved) {
          const size = Math.max(1, this.definition.claimBatch ?? this.host.claimBatch);
          const sentAt = performance.now();
          this.claiming = true;
          let result: ClaimResult;
          try {
            result = await this.host.mailbox.claim(
              this.id,
              size,
              this.token,
              this.owner,
              this.host.tracing !== undefined,
            );
          } finally {
            this.claiming = false;
          }
          if (result.fenced) {
            this.fenced = true;
            break;
          }
          // What a look saw before this claim, the claim has taken into account.
          this.peekTop = null;
          if (this.wokenDuringClaim) {
            this.wokenDuringClaim = false;
            if (result.claimed.length > 1) this.lookAtInbox();
          }
          const offsetMs = result.nowMs - Date.now();
          this.renewedAt = sentAt;
          this.lost = undefined;
          this.reportClaim(result);
          if (this.host.tracing && result.claimed.length > 0) {
            this.claimSpan = this.host.tracing.received(this.id, sentAt, result.claimed, {
              timedOut: result.timedOut.length,
              rejected: result.rejected,
              duplicates: result.duplicates,
            });
          }
          this.batch = result.claimed;
          let preempted = false;
          for (this.position = 0; this.position < this.batch.length; this.position++) {
            if (this.state !== "running" || crash || this.fenced || this.notSaved) break;
            const next = this.batch[this.position] as ClaimedMessage;
            // Never start a message whose lease may be lost: renew when renewal is due (a
            // synchronous handler keeps the renewal timer from firing), skip what is not held.
            if (!(await this.stillHeld(next))) continue;
            if (await this.outranked(next)) {
              preempted = true;
              break;
            }
            this.inHand = next;
            try {
              crash = await this.handle(next, offsetMs);
            } finally {
              this.inHand = undefined;
            }
            if (this.broadcasts?.length) await this.runBroadcasts();
          }
          // Whatever is left of the batch was not started: it goes back at once.
          this.releaseHeld();
          // Awaited, although the next claim would queue behind it on the same connection anyway:
          // sending both at once keeps Redis busy back to back, and another client's message
          // (a CRITICAL tell) then waits behind two scripts instead of one.
          await this.flush();
          const seen = result.claimed.length + result.timedOut.length + result.rejected + result.duplicates;
          more = result.more || preempted || seen >= size;
        }
      } while (this.again && this.state === "running" && !crash && !this.fenced && !this.notSaved);
    } catch (err) {
      // Whatever failed (Redis, most likely), the messages still held go back now, not after
      // their lease; the one in hand, if any, is among them.
      this.releaseHeld();
      void this.write();
      this.log.error({ err }, "serving the inbox failed; retrying in 1 s");
      this.retryTimer = this.host.hostClock.setTimeout(() => this.wake(), 1000);
      this.retryTimer.unref();
    }
    // A persisted state was not saved: the state in memory is ahead of Redis; restart from Redis'.
    if (!crash && this.notSaved) crash = { directive: "restart", error: this.notSaved };
    if (crash && this.state === "running") await this.end(crash);
    else if (this.fenced && this.state === "running") await this.yieldToOwner();
  }

  /**
   * Another process owns the actor now (this one was taken for dead): nothing is held any more
   * (its leases were taken back), so the incarnation ends and its host stands by again.
   */
  private async yieldToOwner(): Promise<void> {
    this.state = "stopped";
    clearInterval(this.leaseTimer);
    await this.flush();
    await this.teardown();
    this.exits?.cellFenced?.(this);
  }

  /**
   * Starts a look at the inbox's top priority, after a wake-up while draining: something that
   * outranks the rest of the claimed batch may have arrived. One look at a time; wake-ups during
   * a look ask for one more after it. The look runs while the handler in hand does.
   */
  private lookAtInbox(): void {
    if (this.peeking) {
      this.peekAgain = true;
      return;
    }
    this.peeking = this.host.mailbox
      .topPriority(this.id)
      .then(
        (top) => {
          if (top !== null && (this.peekTop === null || top > this.peekTop)) this.peekTop = top;
        },
        () => {
          // Redis trouble: the next claim sees the inbox as it is anyway.
        },
      )
      .finally(() => {
        this.peeking = undefined;
        if (this.peekAgain && this.draining) {
          this.peekAgain = false;
          this.lookAtInbox();
        }
      });
  }

  /**
   * True when a message of higher priority than `next` waits in the inbox: the rest of the
   * batch then goes back and the cell claims again, so a CRITICAL message, however it was sent
   * (by redactor, or by a peer with its own score), waits only for the handler in hand. Waits
   * for a look in flight (it was started by a wake-up and ran alongside that handler).
   */
  private async outranked(next: ClaimedMessage): Promise<boolean> {
    const peeking = this.peeking;
    if (peeking) await peeking;
    const top = this.peekTop;
    this.peekTop = null;
    return top !== null && top > next.priority;
  }

  /** Ends this incarnation after a handler failure and tells the supervisor. */
  private async end(crash: Crash): Promise<void> {
    this.state = "stopped";
    clearInterval(this.leaseTimer);
    await this.flush();
    await this.teardown();
    const kind = crash.directive === "restart" ? "crash" : crash.directive;
    this.exits?.cellExited(this, { kind, error: crash.error });
  }

  private reportClaim(result: ClaimResult): void {
    const events = this.host.events;
    if (result.claimed.length > 0)
      events.emit("message.claimed", { actor: this.id, count: result.claimed.length });
    for (const id of result.timedOut) {
      this.log.warn({ msgId: id }, "message deadline passed before it started; marked timeout");
      events.emit("message.timeout", { actor: this.id, id });
    }
    if (result.rejected > 0) {
      this.log.warn({ count: result.rejected }, "malformed or oversized messages moved to the dead letters");
      events.emit("message.rejected", { actor: this.id, count: result.rejected });
    }
    for (const refused of result.refusedRequests) this.answerRefused(refused);
  }

  /**
   * Sends the error reply to a request the claim refused (oversize), so its asker fails now
   * instead of at its timeout. Not atomic with the refusal, unlike a handler's: the reply's id
   * (`error_<request id>`) makes a second send of it a duplicate that is skipped.
   */
  private answerRefused(refused: RefusedRequest): void {
    const reply = this.errorReplyTo(refused.id, refused, refused.reason, refused.error);
    if (!reply) return;
    this.host.mailbox.send([reply]).then(
      () => this.host.sent(reply.envelope),
      (err: unknown) =>
        this.log.warn({ msgId: refused.id, err }, "could not send the error reply; the asker will time out"),
    );
  }

  /**
   * Renews the leases of every message this cell still holds (the one in hand and the rest of
   * the batch) and notes those it no longer holds; one renewal at a time.
   */
  private extendLeases(): Promise<void> {
    this.renewal ??= this.renew().finally(() => {
      this.renewal = undefined;
    });
    return this.renewal;
  }

  private async renew(): Promise<void> {
    const held = this.batch.slice(this.position).filter((m) => !this.lost?.has(m.id));
    if (held.length === 0) return;
    const sentAt = performance.now();
    let outcomes: RecordOutcome[];
    try {
      outcomes = await this.host.mailbox.extend(this.id, this.token, held, this.owner);
    } catch (err) {
      this.log.warn(
        { err },
        "could not renew leases; a message is not started unless its lease is surely held",
      );
      return;
    }
    this.renewedAt = sentAt;
    // Another process owns the actor now: nothing more of the batch starts here.
    if (outcomes.includes("not-owner")) this.fenced = true;
    for (const [i, outcome] of outcomes.entries()) {
      const message = held[i] as ClaimedMessage;
      if (outcome !== "written") this.leaseLost(message, outcome, "extend");
    }
  }

  /** A claimed message is not held any more: never start it, abort its handler if it runs. */
  private leaseLost(
    message: ClaimedMessage,
    reason: Exclude<RecordOutcome, "written">,
    during: "start" | "extend",
  ): void {
    if (this.lost?.has(message.id)) return;
    this.lost ??= new Set();
    this.lost.add(message.id);
    this.log.warn(
      { msgId: message.id, reason, during },
      "lease of a claimed message lost; it is not ours to run or finish",
    );
    this.host.events.emit("lease.lost", { actor: this.id, id: message.id, reason, during });
    if (this.inHand === message) this.running?.abort(new LeaseLostError(this.id, message.id, reason));
  }

  /**
   * True when `next` may start: its lease is surely held. Renews first when renewal is due;
   * when Redis cannot confirm it and the lease may have run out, throws, so the batch is given
   * up (its leases bring the messages back).
   */
  private async stillHeld(next: ClaimedMessage): Promise<boolean> {
    if (performance.now() - this.renewedAt >= this.confirmMs) await this.extendLeases();
    if (this.lost?.has(next.id)) return false;
    if (performance.now() - this.renewedAt >= this.leaseMs) {
      throw new Error(`cannot confirm the lease of message ${next.id}; the claimed batch is given up`);
    }
    return true;
  }

  /** Runs queued broadcasts one at a time, like messages, so they never overlap a handler. */
  private async runBroadcasts(): Promise<void> {
    while (this.broadcasts?.length) {
      const message = this.broadcasts.shift() as Envelope;
      const handler = ownEntry(this.definition.handlers, message.message_type) ?? this.definition.fallback;
      if (!handler) continue;
      const abort = new Abort();
      try {
        await handler(message.payload, this.context(message, 1, abort));
      } catch (err) {
        abort.detached = { state: this.actorState };
        this.rollBackState();
        this.log.error({ err, type: message.message_type }, "broadcast handler failed");
        continue;
      }
      // A persisted actor: what the broadcast changed is the point a later failed message rolls
      // back to, and is saved with the next completed message.
      if (this.persisted) {
        try {
          this.stateData = encodeState(this.id, this.actorState, this.persisted);
        } catch (err) {
          this.rollBackState();
          this.log.error(
            { err, type: message.message_type },
            "broadcast handler left a state that cannot be saved; its changes are rolled back",
          );
        }
      }
    }
  }

  /** Hands back, unprocessed, what is left of the claimed batch from the current position. */
  private releaseHeld(): readonly ClaimedMessage[] {
    const held = this.batch.slice(this.position).filter((m) => !this.lost?.has(m.id));
    for (const message of held) this.finish(this.releaseRecord(message));
    this.batch = NOTHING;
    return held;
  }

  private releaseRecord(message: ClaimedMessage): FinishRecord {
    const started = message === this.inHand;
    return {
      id: message.id,
      member: message.member,
      token: this.token,
      event: "RELEASE",
      attempts: message.runsBefore + (started ? 1 : 0),
      // The claim counted the first message's run: give it back if that run never started.
      giveBack: message.counted && !started,
      requeue: true,
    };
  }

  private context(message: Envelope, attempt: number, abort: Abort): ActorContext<never, unknown> {
    const cell = this;
    let log: Logger | undefined;
    return {
      get signal() {
        return abort.signal;
      },
      // Changed in place or assigned: either way it is the cell's state (saved with persist),
      // until the run fails or times out (then its own snapshot: see Abort.detached).
      get state() {
        return abort.detached ? abort.detached.state : cell.actorState;
      },
      set state(value: unknown) {
        if (abort.detached) abort.detached.state = value;
        else cell.actorState = value;
      },
      self: this.self as never,
      system: this.host.system,
      message,
      attempt,
      get log() {
        log ??= cell.log.child({ msgId: message.id, type: message.message_type });
        return log;
      },
      ref: (id: string) => this.host.refFrom(this.id, id) as never,
      extendLease: () => this.extendLeases(),
      timers: this.timers as never,
    };
  }

  /** The message type of the reply to a `type` request: the actor's replyTypes, else `<type>_reply`. */
  private replyTypeOf(type: string): string {
    return ownEntry(this.definition.replyTypes, type) ?? `${type}_reply`;
  }

  /** The error reply to request `requestId`, encoded, or undefined (logged) when it cannot be. */
  private errorReplyTo(
    requestId: string,
    request: FailedRequest,
    reason: string,
    error: string,
  ): EncodedMessage | undefined {
    try {
      const timestamp = this.host.clock.nowMicros() / 1e6;
      const replyType = this.replyTypeOf(request.messageType);
      return this.host.mailbox.encode(
        errorReply(requestId, request, this.id, replyType, reason, error, timestamp),
      );
    } catch (err) {
      this.log.warn({ msgId: requestId, err }, "could not build the error reply; the asker will time out");
      return undefined;
    }
  }

  /** Ends a message as failed and dead-lettered, with a log line and an event. */
  private deadLetter(base: Omit<FinishRecord, "event">, type: string, reason: string, error: string): void {
    this.log.warn({ msgId: base.id, type, reason }, error);
    this.host.events.emit("message.failed", {
      actor: this.id,
      id: base.id,
      type,
      error,
      reason,
      deadLettered: true,
    });
    if (this.processSpan) this.host.tracing?.fail(this.processSpan, error, { deadLetter: reason });
    // A request someone may be waiting for gets an error reply, written with the outcome, so
    // the asker fails now instead of at its timeout (src/error-replies.ts).
    const request = failedRequest(base.member);
    const reply = request && this.errorReplyTo(base.id, request, reason, error);
    this.finish({ ...base, event: "FAIL", error, deadReason: reason, reply });
    if (reply) this.host.sent(reply.envelope);
  }

  /**
   * Runs one message; returns a Crash when the handler's failure ends this incarnation. Tracing
   * on, its process span (begun once the message is the actor's business: not an ask reply the
   * system takes) ends with it.
   */
  private async handle(claimed: ClaimedMessage, offsetMs: number): Promise<Crash | undefined> {
    if (!this.host.tracing) return this.handleMessage(claimed, offsetMs);
    try {
      return await this.handleMessage(claimed, offsetMs);
    } finally {
      this.processSpan?.end();
      this.processSpan = undefined;
    }
  }

  /** Begins the process span of `claimed` (tracing on). */
  private beginProcess(claimed: ClaimedMessage, type: string): void {
    const tracing = this.host.tracing;
    if (tracing)
      this.processSpan = tracing.process(this.id, claimed, claimed.runsBefore + 1, this.claimSpan, type);
  }

  private async handleMessage(claimed: ClaimedMessage, offsetMs: number): Promise<Crash | undefined> {
    const { member, id } = claimed;
    // Attempts count runs that started, this one included.
    const attempts = claimed.runsBefore + 1;
    const base = { id, member, token: this.token, attempts };
    let message: Envelope;
    try {
      // Decoded for reading only: the member's bytes are what is handed back to every script.
      message = decodeEnvelope(member.toString("utf8"));
    } catch (err) {
      this.beginProcess(claimed, "");
      this.deadLetter(base, "", "invalid-envelope", (err as Error).message);
      return;
    }
    const type = message.message_type;
    if (message.timeout !== null && (message.timestamp + message.timeout) * 1000 < Date.now() + offsetMs) {
      this.log.warn({ msgId: id, type }, "message deadline passed before it started; marked timeout");
      this.host.events.emit("message.timeout", { actor: this.id, id });
      this.beginProcess(claimed, type);
      if (this.processSpan) this.host.tracing?.fail(this.processSpan, "deadline passed before start");
      this.finish({ ...base, event: "EXPIRE", error: "deadline passed before start" });
      return;
    }
    if (this.intercept?.(message)) {
      this.finish({ ...base, event: "COMPLETE" });
      return;
    }
    this.beginProcess(claimed, type);
    const maxAttempts = this.definition.maxAttempts ?? DEFAULT_MAX_ATTEMPTS;
    if (attempts > maxAttempts) {
      const runs = claimed.runsBefore;
      const error = `${runs} runs started and none finished (maxAttempts ${maxAttempts}): its consumer kept dying`;
      // Not run: the first of a claim had this run counted by the claim, which is given back.
      this.deadLetter(
        { ...base, attempts: runs, giveBack: claimed.counted },
        type,
        "attempts-exhausted",
        error,
      );
      return;
    }
    const handler = ownEntry(this.definition.handlers, type) ?? this.definition.fallback;
    if (!handler) {
      if (message.reply_to !== null) {
        this.log.debug({ msgId: id, type, replyTo: message.reply_to }, "late or unexpected reply dropped");
        this.finish({ ...base, event: "COMPLETE" });
        return;
      }
      const known = Object.keys(this.definition.handlers).join(", ") || "none";
      this.deadLetter(
        base,
        type,
        "unknown-type",
        `no handler for "${type}" in actor "${this.id}" (handles: ${known})`,
      );
      return;
    }
    let payload = message.payload;
    const schema = ownEntry(this.definition.schemas, type);
    if (schema) {
      let outcome: Awaited<ReturnType<typeof validate>>;
      try {
        outcome = await validate(schema, payload);
      } catch (err) {
        outcome = { ok: false, error: `the schema itself threw: ${asError(err).message}` };
      }
      if (!outcome.ok) {
        this.deadLetter(
          base,
          type,
          "invalid-payload",
          `payload of "${type}" fails its schema: ${outcome.error}`,
        );
        return;
      }
      payload = outcome.value;
    }
    // On a cluster a reply and the record of its request are two calls (the reply first): the
    // next handler starts once they are in, so a crash in it cannot make a finished request run again.
    if (this.host.mailbox.crossSlotSplit && this.writes?.size) await Promise.all(this.writes);
    const started = performance.now();
    let result: unknown;
    const abort = new Abort();
    this.running = abort;
    // Before the handler runs, the outcomes so far and the start of this run (the claim counted
    // only the first of its batch) go to Redis, so both count even if this handler kills the
    // process: its batch-mates that finished do not run again, and it uses an attempt.
    void this.write(claimed.counted ? undefined : claimed);
    try {
      const ctx = this.context(message, attempts, abort);
      const span = this.processSpan;
      // Tracing on: the handler runs in its process span (its own spans and sends nest under it).
      result = await (span && this.host.tracing
        ? this.host.tracing.within(span, () => this.run(handler, payload, ctx, type, abort))
        : this.run(handler, payload, ctx, type, abort));
    } catch (err) {
      // Before the rollback: the run keeps the state it worked on, the cell gets a fresh one.
      abort.detached = { state: this.actorState };
      return this.handlerFailed(base, type, asError(err), offsetMs);
    } finally {
      this.running = undefined;
    }
    // A persisted actor's state after this message, encoded now (a later message changes it):
    // one that cannot be saved fails the message as its handler's exception would.
    let state: StateWrite | undefined;
    if (this.persisted) {
      try {
        const data = encodeState(this.id, this.actorState, this.persisted);
        state = { base: this.stateSeq, version: this.persisted.version, data };
      } catch (err) {
        return this.handlerFailed(base, type, asError(err), offsetMs);
      }
    }
    let reply: EncodedMessage | undefined;
    if (result !== undefined) {
      try {
        reply = this.host.mailbox.encode({
          id: replyIdOf(id),
          sender: this.id,
          recipient: message.sender,
          message_type: this.replyTypeOf(type),
          payload: result,
          priority: message.priority,
          timestamp: this.host.clock.nowMicros() / 1e6,
          reply_to: id,
          timeout: null,
        });
      } catch (err) {
        this.rollBackState();
        this.deadLetter(base, type, "reply-error", `reply could not be sent: ${(err as Error).message}`);
        return;
      }
    }
    const durationMs = performance.now() - started;
    this.host.events.emit("message.completed", {
      actor: this.id,
      id,
      type,
      sender: message.sender,
      durationMs,
    });
    if (state) {
      this.stateSeq += 1;
      this.stateData = state.data;
    }
    // Tracing on: the reply's span, a child of the process span, ends once its write returns.
    const replySpan = reply && this.processSpan && this.host.tracing?.reply(this.processSpan, reply.envelope);
    const written = this.finish({ ...base, event: "COMPLETE", reply, state });
    if (replySpan) this.host.tracing?.settle(replySpan, written ?? Promise.resolve());
    if (reply) this.host.sent(reply.envelope);
  }

  /**
   * A persisted actor's message failed: ctx.state goes back to the last state saved (or handed to
   * Redis to save), so that what the failed run changed is neither seen nor saved by the next.
   */
  private rollBackState(): void {
    if (this.persisted && this.stateData !== undefined)
      this.actorState = decodeState(this.id, this.stateData);
  }

  /**
   * A persisted state handed to Redis was not saved (`reason`): the state in memory is ahead of
   * the saved one, so the incarnation must not go on from it. It ends as a crash (StateNotSavedError)
   * once the message in hand is done, and its supervisor's restart loads the saved state; a
   * later state of this incarnation is refused by Redis meanwhile (its seq no longer matches).
   */
  private stateNotSaved(messageId: string, reason: string, cause?: unknown): void {
    if (this.notSaved || this.state !== "running") return;
    this.notSaved = new StateNotSavedError(this.id, messageId, reason, { cause });
    this.log.warn(
      { msgId: messageId, reason },
      "persisted state not saved; the actor restarts from its saved state",
    );
    // Draining: the loop ends at the next message. Idle: a drain that ends at once.
    this.wake();
  }

  /** Runs a handler, bounded by the actor's handlerTimeoutMs when it has one. */
  private async run(
    handler: (payload: never, ctx: never) => unknown,
    payload: unknown,
    ctx: ActorContext<never, unknown>,
    type: string,
    abort: Abort,
  ): Promise<unknown> {
    const limit = this.definition.handlerTimeoutMs;
    if (limit === undefined) return await handler(payload as never, ctx as never);
    const clock = this.host.hostClock;
    let timer: TimerHandle | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = clock.setTimeout(() => {
        const error = new HandlerTimeoutError(this.id, type, limit);
        abort.abort(error);
        reject(error);
      }, limit);
    });
    try {
      return await Promise.race([Promise.resolve(handler(payload as never, ctx as never)), timeout]);
    } finally {
      clock.clearTimeout(timer);
    }
  }

  /** A handler threw: retry the message later or dead-letter it, then apply the directive. */
  private handlerFailed(
    base: Omit<FinishRecord, "event">,
    type: string,
    err: Error,
    offsetMs: number,
  ): Crash | undefined {
    const error = `${err.name}: ${err.message}`;
    const maxAttempts = this.definition.maxAttempts ?? DEFAULT_MAX_ATTEMPTS;
    const directive = this.definition.onFailure ?? "restart";
    const retry = base.attempts < maxAttempts;
    this.rollBackState();
    this.log.error(
      { msgId: base.id, type, err, attempt: base.attempts, maxAttempts, directive },
      "handler failed",
    );
    if (retry) {
      if (this.processSpan) this.host.tracing?.fail(this.processSpan, err, { retry: true });
      const delayMs = backoffDelay(this.definition.retryBackoff ?? DEFAULT_RETRY_BACKOFF, base.attempts);
      this.host.events.emit("message.failed", {
        actor: this.id,
        id: base.id,
        type,
        error,
        reason: "handler-error",
        deadLettered: false,
      });
      this.finish({ ...base, event: "RETRY", error, retryAtMs: Date.now() + offsetMs + delayMs });
      this.host.wakeLater(this.id, delayMs);
    } else {
      this.deadLetter(base, type, "handler-error", error);
    }
    return directive === "resume" ? undefined : { directive, error: err };
  }

  /**
   * Buffers an outcome; writes at once when it carries a reply or the buffer is old, else
   * within FINISH_LINGER_MS even if the next handler is slow. Returns the write when it wrote at once.
   */
  private finish(record: FinishRecord): Promise<void> | undefined {
    if (!this.buffered?.length) this.bufferedSince = Date.now();
    this.buffered ??= [];
    this.buffered.push(record);
    if (record.reply || Date.now() - this.bufferedSince >= FINISH_LINGER_MS) {
      // The write's promise (it never rejects): a reply's span ends with it.
      return this.write();
    }
    this.lingerTimer ??= setTimeout(() => void this.write(), FINISH_LINGER_MS);
  }

  /**
   * Writes the buffered outcomes and, with `starting`, counts the start of its run, in one script
   * call that is written to the connection before this returns (not awaited by the caller).
   */
  private write(starting?: ClaimedMessage): Promise<void> {
    clearTimeout(this.lingerTimer);
    this.lingerTimer = undefined;
    const records = this.buffered ?? [];
    if (records.length === 0 && !starting) return Promise.resolve();
    this.buffered = undefined;
    const start = starting && { id: starting.id, token: this.token };
    const write = this.host.mailbox
      .finish(this.id, records, start)
      .then(({ outcomes, started }) => {
        if (starting && started !== undefined && typeof started !== "number") {
          this.leaseLost(starting, started, "start");
        }
        for (const [i, outcome] of outcomes.entries()) {
          if (outcome === "written") continue;
          const record = records[i] as FinishRecord;
          const id = record.id;
          if (outcome === "state-stale") {
            // Still leased here: it goes back to the inbox now rather than when its lease runs out,
            // and its run, whose outcome was refused through no fault of its own, uses no attempt.
            const { member, token, attempts } = record;
            this.finish({ id, member, token, attempts, event: "RELEASE", requeue: true, giveBack: true });
          } else {
            this.log.warn(
              { msgId: id, reason: outcome },
              "outcome not written: the lease was no longer ours",
            );
          }
          this.host.events.emit("lease.lost", { actor: this.id, id, reason: outcome, during: "finish" });
          if (record.state) this.stateNotSaved(id, outcome);
        }
      })
      .catch((err: unknown) => {
        if (err instanceof ReplicationError) {
          this.log.warn(
            { err, count: records.length },
            "message outcomes written, but not confirmed by replicas",
          );
          return;
        }
        // The leases expire and the messages are delivered again: at least once.
        this.log.error({ err, count: records.length }, "writing message outcomes failed");
        // Saved or not, nobody knows: the state in memory must not be trusted over Redis'.
        const withState = records.find((r) => r.state);
        if (withState) this.stateNotSaved(withState.id, "writing it failed", err);
      })
      .finally(() => {
        this.writes?.delete(write);
      });
    this.writes ??= new Set();
    this.writes.add(write);
    return write;
  }

  /** Writes buffered outcomes and waits for every write in flight. */
  async flush(): Promise<void> {
    void this.write();
    // A write's outcome may buffer one more (a message whose persisted state was stale goes back).
    while (this.writes?.size) {
      await Promise.all(this.writes);
      void this.write();
    }
  }
}
