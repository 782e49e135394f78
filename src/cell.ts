/**
 * A running incarnation of an actor: it claims from the actor's inbox, runs one message at a
 * time through the handlers, and writes each outcome back as a lifecycle event. Outcomes are
 * buffered briefly and written in one script call (a reply is written at once), so a fast
 * actor pays about one round trip per claimed batch, not per message.
 */
import type { Logger } from "pino";
import type { ActorContext, ActorDefinition, ActorRef, SetupContext } from "./actor.js";
import { decodeEnvelope, type Envelope, newMessageId } from "./envelope.js";
import type { SystemEventEmitter } from "./events.js";
import type { ClaimedMessage, ClaimResult, EncodedMessage, FinishRecord, Mailbox } from "./mailbox.js";
import { canonicalScore, isPriority, monotonicMicros, Priority } from "./priority.js";
import { validate } from "./schema.js";
import type { ActorSystem } from "./system.js";
import type { Wakeable } from "./wakeups.js";

/** What a cell needs from the system that runs it. */
export interface CellHost {
  readonly mailbox: Mailbox;
  readonly system: ActorSystem;
  readonly log: Logger;
  readonly nodeId: string;
  readonly claimBatch: number;
  readonly events: SystemEventEmitter;
  /** A ref to `target` whose messages are sent as `sender`. */
  refFrom(sender: string, target: string): ActorRef;
}

/** Where a cell is in its life. */
export type CellState = "starting" | "running" | "stopping" | "stopped";

/** Outcomes older than this are written without waiting for the rest of the batch. */
const FINISH_LINGER_MS = 5;

let incarnations = 0;

/** Best-effort id of a member that failed to decode (the claim script checked it has one). */
function looseId(member: string): string {
  try {
    const id = (JSON.parse(member) as { id?: unknown }).id;
    return typeof id === "number" ? String(id) : String(id ?? "");
  } catch {
    return "";
  }
}

/** The canonical score a member goes back to the inbox at. */
function requeueScore(member: string): number {
  try {
    const data = JSON.parse(member) as { priority?: unknown; timestamp?: unknown };
    const priority = isPriority(data.priority) ? data.priority : Priority.NORMAL;
    const ts = typeof data.timestamp === "number" ? data.timestamp * 1e6 : monotonicMicros();
    return canonicalScore(priority, Math.round(ts));
  } catch {
    return canonicalScore(Priority.NORMAL, monotonicMicros());
  }
}

/** One running actor. */
export class ActorCell implements Wakeable {
  state: CellState = "starting";
  readonly id: string;
  readonly log: Logger;
  private actorState: unknown;
  private readonly token: string;
  private readonly self: ActorRef;
  private draining: Promise<void> | undefined;
  private again = false;
  private retryTimer: NodeJS.Timeout | undefined;
  private readonly broadcasts: Envelope[] = [];
  private buffered: FinishRecord[] = [];
  private bufferedSince = 0;
  private readonly writes = new Set<Promise<void>>();
  /** The message being handled and its lease, for a stop that cannot wait. */
  private current: ClaimedMessage | undefined;

  constructor(
    private readonly host: CellHost,
    readonly definition: ActorDefinition,
    /** Offered each message first; true means it was consumed (ask replies). */
    private readonly intercept?: (message: Envelope) => boolean,
  ) {
    this.id = definition.id;
    incarnations += 1;
    this.token = `${host.nodeId}/${incarnations}`;
    this.log = host.log.child({ actor: this.id });
    this.self = host.refFrom(this.id, this.id);
  }

  /** True when idle: running and not draining. */
  get idle(): boolean {
    return this.state === "running" && this.draining === undefined;
  }

  /** Runs `setup` and starts serving. */
  async start(): Promise<void> {
    const setupCtx: SetupContext<never> = {
      self: this.self as never,
      log: this.log,
      system: this.host.system,
    };
    this.actorState = this.definition.setup ? await this.definition.setup(setupCtx) : undefined;
    this.state = "running";
    this.wake();
  }

  /** Claims and runs whatever is in the inbox (or notes that it must look again). */
  wake(): void {
    if (this.state !== "running") return;
    if (this.draining) {
      this.again = true;
      return;
    }
    this.draining = this.drain().finally(() => {
      this.draining = undefined;
    });
  }

  /** Queues a broadcast for this actor (see ActorDefinition.broadcasts). */
  deliverBroadcast(message: Envelope): void {
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
    clearTimeout(this.retryTimer);
    const draining = this.draining;
    if (draining) {
      const timedOut = await Promise.race([
        draining.then(() => false),
        new Promise<boolean>((r) => setTimeout(() => r(true), Math.max(0, deadlineMs - Date.now())).unref()),
      ]);
      if (timedOut && this.current) {
        this.log.warn(
          { msgId: looseId(this.current.member) },
          "handler still running at stop; message released",
        );
        this.finish(this.releaseRecord(this.current));
      }
    }
    await this.flush();
    this.state = "stopped";
  }

  private async drain(): Promise<void> {
    try {
      do {
        this.again = false;
        this.runBroadcasts();
        let more = true;
        while (more && this.state === "running") {
          const batch = this.definition.claimBatch ?? this.host.claimBatch;
          const result = await this.host.mailbox.claim(this.id, batch, this.token);
          const offsetMs = result.nowMs - Date.now();
          this.reportClaim(result);
          const claimed = result.claimed;
          for (let i = 0; i < claimed.length; i++) {
            const message = claimed[i] as ClaimedMessage;
            if (this.state !== "running") {
              for (const rest of claimed.slice(i)) this.finish(this.releaseRecord(rest));
              break;
            }
            this.current = message;
            await this.handle(message, offsetMs);
            this.current = undefined;
            if (this.broadcasts.length > 0) this.runBroadcasts();
          }
          await this.flush();
          const seen = claimed.length + result.timedOut.length + result.rejected + result.duplicates;
          more = result.more || seen >= batch;
        }
      } while (this.again && this.state === "running");
    } catch (err) {
      this.current = undefined;
      this.log.error({ err }, "claiming failed; retrying in 1 s");
      this.retryTimer = setTimeout(() => this.wake(), 1000);
      this.retryTimer.unref();
    }
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
  }

  private runBroadcasts(): void {
    while (this.broadcasts.length > 0) {
      const message = this.broadcasts.shift() as Envelope;
      const handler = this.definition.handlers[message.message_type];
      if (!handler) continue;
      Promise.resolve()
        .then(() => handler(message.payload, this.context(message)))
        .catch((err: unknown) =>
          this.log.error({ err, type: message.message_type }, "broadcast handler failed"),
        );
    }
  }

  private releaseRecord(message: ClaimedMessage): FinishRecord {
    return {
      id: looseId(message.member),
      member: message.member,
      token: this.token,
      event: "RELEASE",
      attempts: message.attempts,
      requeueScore: requeueScore(message.member),
    };
  }

  private context(message: Envelope): ActorContext<never, unknown> {
    const cell = this;
    let log: Logger | undefined;
    return {
      state: this.actorState,
      self: this.self as never,
      system: this.host.system,
      message,
      get log() {
        log ??= cell.log.child({ msgId: message.id, type: message.message_type });
        return log;
      },
      ref: (id: string) => this.host.refFrom(this.id, id) as never,
    };
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
    this.finish({ ...base, event: "FAIL", error, deadReason: reason });
  }

  private async handle(claimed: ClaimedMessage, offsetMs: number): Promise<void> {
    const { member, attempts } = claimed;
    let message: Envelope;
    try {
      message = decodeEnvelope(member);
    } catch (err) {
      const base = { id: looseId(member), member, token: this.token, attempts };
      this.deadLetter(base, "", "invalid-envelope", (err as Error).message);
      return;
    }
    const { id, message_type: type } = message;
    const base = { id, member, token: this.token, attempts };
    if (message.timeout !== null && (message.timestamp + message.timeout) * 1000 < Date.now() + offsetMs) {
      this.log.warn({ msgId: id, type }, "message deadline passed before it started; marked timeout");
      this.host.events.emit("message.timeout", { actor: this.id, id });
      this.finish({ ...base, event: "EXPIRE", error: "deadline passed before start" });
      return;
    }
    if (this.intercept?.(message)) {
      this.finish({ ...base, event: "COMPLETE" });
      return;
    }
    const handler = this.definition.handlers[type];
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
    const schema = this.definition.schemas?.[type];
    if (schema) {
      const outcome = await validate(schema, payload);
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
    const started = performance.now();
    let result: unknown;
    try {
      result = await handler(payload as never, this.context(message) as never);
    } catch (err) {
      const error = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
      this.log.error({ msgId: id, type, err }, "handler failed");
      this.host.events.emit("message.failed", {
        actor: this.id,
        id,
        type,
        error,
        reason: "handler-error",
        deadLettered: true,
      });
      this.finish({ ...base, event: "FAIL", error, deadReason: "handler-error" });
      return;
    }
    let reply: EncodedMessage | undefined;
    if (result !== undefined) {
      try {
        reply = this.host.mailbox.encode({
          id: newMessageId(),
          sender: this.id,
          recipient: message.sender,
          message_type: this.definition.replyTypes?.[type] ?? `${type}_reply`,
          payload: result,
          priority: message.priority,
          timestamp: monotonicMicros() / 1e6,
          reply_to: id,
          timeout: null,
        });
      } catch (err) {
        this.deadLetter(base, type, "reply-error", `reply could not be sent: ${(err as Error).message}`);
        return;
      }
    }
    this.host.events.emit("message.completed", {
      actor: this.id,
      id,
      type,
      durationMs: performance.now() - started,
    });
    this.finish({ ...base, event: "COMPLETE", reply });
  }

  /** Buffers an outcome; writes at once when it carries a reply or the buffer is old. */
  private finish(record: FinishRecord): void {
    if (this.buffered.length === 0) this.bufferedSince = Date.now();
    this.buffered.push(record);
    if (record.reply || Date.now() - this.bufferedSince >= FINISH_LINGER_MS) void this.write();
  }

  private write(): Promise<void> {
    if (this.buffered.length === 0) return Promise.resolve();
    const records = this.buffered;
    this.buffered = [];
    const write = this.host.mailbox
      .finish(this.id, records)
      .then((written) => {
        written.forEach((ok, i) => {
          if (!ok) this.log.warn({ msgId: records[i]?.id }, "lease lost before the outcome was written");
        });
      })
      .catch((err: unknown) => {
        // The leases expire and the messages are delivered again: at least once.
        this.log.error({ err, count: records.length }, "writing message outcomes failed");
      })
      .finally(() => {
        this.writes.delete(write);
      });
    this.writes.add(write);
    return write;
  }

  /** Writes buffered outcomes and waits for every write in flight. */
  async flush(): Promise<void> {
    void this.write();
    await Promise.all(this.writes);
  }
}
