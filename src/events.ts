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
  /** A message's deadline passed before it started. */
  "message.timeout": { actor: string; id: string };
  /** Malformed or oversized members were dead-lettered by the claim. */
  "message.rejected": { actor: string; count: number };
  /** An ask got its reply; `id` is the request's id. */
  "ask.replied": { id: string; recipient: string; type: string; latencyMs: number };
  /** An ask timed out; `id` is the request's id. */
  "ask.timeout": { id: string; recipient: string; type: string; timeoutMs: number };
  /** An actor incarnation started. */
  "actor.started": { actor: string };
  /** An actor incarnation ended: `stop` (on purpose), `crash`, or a handler's directive. */
  "actor.stopped": { actor: string; reason: string };
  /** A supervisor is restarting an actor after `delayMs`; `attempt` counts restarts in its window. */
  "actor.restarted": { actor: string; supervisor: string; reason: string; attempt: number; delayMs: number };
  /** A supervisor gave up (restart intensity exceeded, or an escalation) and stopped its children. */
  "supervisor.failed": { supervisor: string; error: string };
  /** The root supervisor failed: the system is shutting down. */
  "system.failed": { error: string };
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
