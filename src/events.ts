/**
 * The typed event API: the facts the runtime observes, for metrics, tests and tooling.
 * Listeners run synchronously on the runtime's path, so they should be cheap; a listener that
 * throws is logged and ignored.
 */
import { EventEmitter } from "node:events";
import type { Priority } from "./priority.js";

/** Every event and its payload. */
export interface SystemEvents {
  /** A message was written to an inbox by this system (tells, asks and replies). */
  "message.sent": { id: string; sender: string; recipient: string; type: string; priority: Priority };
  /**
   * A message was scheduled by this system (`delayMs` / `at`): it reaches `recipient`'s inbox at
   * `dueMs` (ms since the epoch, Redis' clock).
   */
  "message.scheduled": {
    id: string;
    sender: string;
    recipient: string;
    type: string;
    priority: Priority;
    dueMs: number;
  };
  /** This process's scheduler moved `count` due scheduled messages into `recipient`'s inbox. */
  "message.due": { recipient: string; count: number };
  /** A scheduled message was cancelled by this system before it was due. */
  "message.cancelled": { id: string; recipient: string };
  /** An actor claimed messages from its inbox. */
  "message.claimed": { actor: string; count: number };
  /** A handler finished. */
  "message.completed": { actor: string; id: string; type: string; sender: string; durationMs: number };
  /** A message failed; `deadLettered` when it went to `queue:<app>:dead`. */
  "message.failed": {
    actor: string;
    id: string;
    type: string;
    error: string;
    reason: string;
    deadLettered: boolean;
  };
  /**
   * A durable timer of `actor` fired (src/timers.ts): `ticks` tick messages were sent into its
   * inbox (0 when its missed-tick policy sent none, or when its previous tick still waited);
   * `dueMs` is the due time of the last tick sent (under `missed: "once"` the latest due tick,
   * whose id ends in it), or when none was sent the due time that fell; `nextDueMs` is when it
   * fires next. All in ms since the epoch.
   */
  "timer.fired": { actor: string; key: string; dueMs: number; ticks: number; nextDueMs: number };
  /** A message's deadline passed before it started. */
  "message.timeout": { actor: string; id: string };
  /** Malformed or oversized members were dead-lettered by the claim. */
  "message.rejected": { actor: string; count: number };
  /**
   * A claimed message is no longer held by this process, so it was not started, or its outcome
   * was not written: its lease expired (a stall longer than `leaseMs`) and another consumer
   * took it, or its hash is gone. `during` says which step found out; `reason` is the script's
   * outcome code (src/mailbox.ts, RecordOutcome).
   */
  "lease.lost": {
    actor: string;
    id: string;
    /** `state-stale`: a persisted state was computed from a saved state that moved on (src/state.ts). */
    reason: "gone" | "lease-lost" | "wrong-status" | "not-held" | "not-owner" | "state-stale";
    during: "start" | "extend" | "finish";
  };
  /** An ask got its reply; `id` is the request's id. */
  "ask.replied": { id: string; recipient: string; type: string; latencyMs: number };
  /** An ask timed out; `id` is the request's id. */
  "ask.timeout": { id: string; recipient: string; type: string; timeoutMs: number };
  /** An ask got an error reply (its request was dead-lettered); `id` is the request's id. */
  "ask.failed": { id: string; recipient: string; type: string; reason: string; error: string };
  /** An actor incarnation started. */
  "actor.started": { actor: string };
  /**
   * A single-activation actor was spawned while another live process owns it (`owner`, a node
   * id): this process stands by and takes it over when that one dies, stops or freezes.
   */
  "actor.standby": { actor: string; owner: string };
  /**
   * This process became the owner of a single-activation actor that it stood by for
   * (`previous`: the node id it took over from, '' when the actor was free) and starts it.
   */
  "actor.activated": { actor: string; previous: string };
  /**
   * A single-activation actor found that another process owns it now (this one was taken for
   * dead: frozen or cut off past three heartbeat periods): its incarnation stopped, and this
   * process stands by again.
   */
  "actor.deactivated": { actor: string; owner: string };
  /** An actor incarnation ended: `stop` (on purpose), `crash`, or a handler's directive. */
  "actor.stopped": { actor: string; reason: string };
  /** A supervisor is restarting an actor after `delayMs`; `attempt` counts restarts in its window. */
  "actor.restarted": { actor: string; supervisor: string; reason: string; attempt: number; delayMs: number };
  /** A supervisor gave up (restart intensity exceeded, or an escalation) and stopped its children. */
  "supervisor.failed": { supervisor: string; error: string };
  /** The root supervisor failed: the system is shutting down. */
  "system.failed": { error: string };
  /**
   * The system started (`node`: this process's node id). Emitted on the turn of the event loop
   * after `createSystem` resolves, so a listener attached right after `await createSystem(…)`
   * hears it.
   */
  "system.started": { appId: string; node: string };
  /** The system finished shutting down, `durationMs` after `shutdown()` was called. */
  "system.stopped": { appId: string; node: string; durationMs: number };
  /**
   * A connection to Redis was lost (`connection`: `commands` or `subscriber`); `error` is the
   * cause. ioredis reconnects by itself; once per outage, however many attempts it takes.
   */
  "redis.disconnected": { connection: "commands" | "subscriber"; error: string };
  /**
   * A lost connection is usable again after `downMs`; `error` is the last error while it was
   * down ('' when none).
   */
  "redis.reconnected": { connection: "commands" | "subscriber"; downMs: number; error: string };
  /**
   * A heartbeat could not be written (Redis unreachable, or over maxmemory with the key gone):
   * after three periods without one, other processes take this one for dead. `failures` counts
   * the failed beats in a row.
   */
  "heartbeat.failed": { node: string; error: string; failures: number };
  /** Heartbeats succeed again after `failures` failed ones over about `downMs`. */
  "heartbeat.recovered": { node: string; failures: number; downMs: number };
  /** The presence of local apps was missing or wrong in Redis (flushed, deleted) and was written again. */
  "presence.repaired": { apps: string[] };
  /**
   * Redis refused a subscription (an ACL without those channels): wake-ups for them fall back to
   * the sweep. `channels` says which kind (`keyspace` notifications, or `actor` channels).
   */
  "subscription.refused": { channels: "keyspace" | "actor"; error: string };
}

/** Names of the events. */
export type SystemEventName = keyof SystemEvents;

/** A typed EventEmitter of SystemEvents. */
export class SystemEventEmitter {
  private readonly emitter = new EventEmitter();

  constructor(private readonly onListenerError: (err: unknown, event: SystemEventName) => void = () => {}) {
    this.emitter.setMaxListeners(0);
  }

  /** Listens to one event. */
  on<E extends SystemEventName>(event: E, listener: (data: SystemEvents[E]) => void): this {
    this.emitter.on(event, listener);
    return this;
  }

  /** Stops listening. */
  off<E extends SystemEventName>(event: E, listener: (data: SystemEvents[E]) => void): this {
    this.emitter.off(event, listener);
    return this;
  }

  /** Listens to the next occurrence only. */
  once<E extends SystemEventName>(event: E, listener: (data: SystemEvents[E]) => void): this {
    this.emitter.once(event, listener);
    return this;
  }

  /** True when someone listens, so callers can skip building the payload. */
  has(event: SystemEventName): boolean {
    return this.emitter.listenerCount(event) > 0;
  }

  /** Emits; a throwing listener is reported and does not stop the runtime. */
  emit<E extends SystemEventName>(event: E, data: SystemEvents[E]): void {
    if (this.emitter.listenerCount(event) === 0) return;
    try {
      this.emitter.emit(event, data);
    } catch (err) {
      this.onListenerError(err, event);
    }
  }
}
