/**
 * Actor definitions and their types. A protocol maps each message type an actor handles to its
 * payload and, for requests, its reply; every `tell`, `ask` and handler is typed from it.
 */
import type { Logger } from "pino";
import type { BackoffOptions } from "./backoff.js";
import type { Envelope } from "./envelope.js";
import { InvalidOptionError } from "./errors.js";
import { checkId, type IdRules } from "./ids.js";
import {
  checkBackoff,
  checkFunction,
  checkNumber,
  checkObject,
  checkOneOf,
  checkStringArray,
  requireObject,
} from "./options.js";
import type { Priority } from "./priority.js";
import type { StandardSchemaV1 } from "./schema.js";
import { MAX_STATE_BYTES_LIMIT, type PersistOptions } from "./state.js";
import type { ActorSystem } from "./system.js";
import type { Timers } from "./timers.js";

/** One message type of a protocol: its payload and, when it is a request, its reply. */
export interface MessageSpec {
  payload: unknown;
  reply?: unknown;
}

/** The protocol of a ref whose recipient's protocol is not named: any type, any payload, askable. */
export type UntypedProtocol = Record<string, { payload: unknown; reply: unknown }>;

/** A protocol: message type → MessageSpec. */
export type Protocol<P = Record<string, MessageSpec>> = { [K in keyof P]: MessageSpec };

/** The payload type of message type `K`. */
export type PayloadOf<P, K extends keyof P> = P[K] extends { payload: infer T } ? T : never;

/** The reply type of message type `K` (never when it has none). */
export type ReplyOf<P, K extends keyof P> = P[K] extends { reply: infer R } ? R : never;

/** The message types of `P` that declare a reply, the only ones `ask` accepts. */
export type AskableType<P> = { [K in keyof P]: P[K] extends { reply: unknown } ? K : never }[keyof P] &
  string;

/** What a handler of `K` returns: its reply, or nothing for a tell-only type. */
// biome-ignore lint/suspicious/noConfusingVoidType: a tell-only handler may be any function returning nothing
export type HandlerResult<P, K extends keyof P> = P[K] extends { reply: infer R } ? R : void;

/** Options of `tell`. */
export interface TellOptions {
  /**
   * Priority in the recipient's inbox.
   * @default Priority.NORMAL
   */
  priority?: Priority;
  /**
   * The message must start within this many ms of being sent, or it is marked `timeout` and
   * never runs. Sent as whole seconds (rounded up), as the wire protocol has it.
   * @default undefined (no deadline)
   */
  timeoutMs?: number;
  /**
   * The message id; a given id runs at most once after it completed.
   * @default a fresh uuid4
   */
  id?: string;
  /**
   * Deliver the message this many ms from now (by Redis' clock) instead of at once: it waits in
   * Redis, invisible to the recipient, and lands in its inbox when due (never before, a few ms
   * after when any redactor process runs). 0 sends at once. At most 10 years. Not with `at`.
   * The message's `timestamp` is its due time, so `timeoutMs` counts from the due time (not
   * from when it reaches the inbox, which is later after an outage: a stale message is marked
   * `timeout` rather than run late).
   * `system.cancel(id)` cancels it until then.
   * @default undefined (sent at once)
   */
  delayMs?: number;
  /**
   * Deliver the message at this time (a Date, or ms since the epoch; judged by Redis' clock), as
   * `delayMs` does. A time in the past sends at once. Not with `delayMs`.
   * @default undefined (sent at once)
   */
  at?: Date | number;
}

/** Options of `ask`. */
export interface AskOptions {
  /**
   * How long to wait for the reply; the request carries the same deadline, so it never runs
   * after the asker gave up (to within the protocol's whole seconds).
   * @default the system's askTimeoutMs (5000)
   */
  timeoutMs?: number;
  /**
   * Priority of the request.
   * @default Priority.NORMAL
   */
  priority?: Priority;
  /**
   * For peers that reply without `reply_to` (docs/PROTOCOL.md): called with each incoming message's
   * envelope; the first for which it returns true is the reply.
   * @default undefined (correlate by reply_to only)
   */
  match?: (message: Envelope) => boolean;
  /**
   * Send the request this many ms from now (see TellOptions.delayMs); `timeoutMs` then counts
   * from the due time, for the request's deadline and for the wait for the reply (which ends
   * `delayMs + timeoutMs` from now at the latest).
   * @default undefined (sent at once)
   */
  delayMs?: number;
  /**
   * Send the request at this time (see TellOptions.at); `timeoutMs` counts from this due time.
   * @default undefined (sent at once)
   */
  at?: Date | number;
}

/** A handle to send messages to any app id, local, remote or foreign. */
export interface ActorRef<P extends Protocol<P> = UntypedProtocol> {
  /** The app id. */
  readonly id: string;
  /** Sends a message; resolves with its id once Redis has it. */
  tell<K extends keyof P & string>(type: K, payload: PayloadOf<P, K>, options?: TellOptions): Promise<string>;
  /**
   * Sends a request from the system's appId and resolves with the reply's payload; rejects
   * with AskTimeoutError.
   */
  ask<K extends AskableType<P>>(
    type: K,
    payload: PayloadOf<P, K>,
    options?: AskOptions,
  ): Promise<ReplyOf<P, K>>;
}

/** What `setup` receives. */
export interface SetupContext<P extends Protocol<P>> {
  /** This actor. */
  self: ActorRef<P>;
  /** A logger bound to this actor. */
  log: Logger;
  /** The system it runs in. */
  system: ActorSystem;
  /**
   * A ref to another app whose `tell` sends as this actor (sender = this actor's id). Its `ask`
   * sends from the system's appId, like every ask, so the reply is not queued behind this
   * actor's own work (an actor cannot take a reply from its own inbox while it is busy).
   */
  ref<Q extends Protocol<Q> = UntypedProtocol>(id: string): ActorRef<Q>;
  /**
   * This actor's durable timers (reminders, src/timers.ts): `ctx.timers.start(key, type,
   * payload, { everyMs } | { cron, tz? })` sends this actor a message of `type` every period,
   * through its own inbox, across restarts of the actor, of its process and of Redis with AOF,
   * once per period however many processes host it; `missed` says what happens to ticks that
   * fell while it was down. `cancel(key)` stops one; `list()` shows them. See the README,
   * "Durable timers".
   */
  timers: Timers<P>;
}

/** What `setup` receives besides its SetupContext: the state saved by an actor with `persist`. */
export interface SavedState<S> {
  /**
   * The actor's last saved state (`persist`): the state after the last message that completed,
   * migrated to the definition's `persist.version`; undefined when nothing was saved yet, and
   * always for an actor without `persist`. Typically `setup: (ctx) => ctx.saved ?? initial`.
   */
  saved: S | undefined;
}

/** What every handler receives besides its payload. */
export interface ActorContext<P extends Protocol<P>, S> extends SetupContext<P> {
  /**
   * This incarnation's state, from `setup`. A handler may change it in place or assign a new
   * value; with `persist`, the value here when the handler returns is saved with its message.
   */
  state: S;
  /** The envelope of the message being handled. */
  message: Envelope;
  /** How many times this message has been delivered, this time included. */
  attempt: number;
  /**
   * Aborted when the handler runs past the actor's `handlerTimeoutMs` or the system stops
   * without waiting for it: pass it to fetch, timers and the like so the work really ends.
   */
  signal: AbortSignal;
  /**
   * Renews the lease on this message (and the rest of the claimed batch) now. The runtime
   * already renews it every `min(leaseMs / 3, heartbeatMs)` while a handler runs; call this
   * before a long blocking step (a synchronous one keeps that timer from firing).
   */
  extendLease(): Promise<void>;
}

/**
 * What happens to an actor whose handler throws (the message itself is retried up to
 * `maxAttempts`, then dead-lettered, whatever the directive):
 * - `restart`: the actor crashes and its supervisor restarts it (fresh `setup` state) unless
 *   it is `temporary`;
 * - `resume`: the actor keeps its state and goes on with the next message;
 * - `stop`: the actor ends normally: a `permanent` child is restarted all the same (OTP's rule),
 *   a `transient` or `temporary` one stays stopped;
 * - `escalate`: its supervisor fails, and its own supervisor handles that.
 */
export type FailureDirective = "restart" | "resume" | "stop" | "escalate";

/** Default `maxAttempts` of an actor. */
export const DEFAULT_MAX_ATTEMPTS = 8;

/** Default `retryBackoff` of an actor: waits of 0.25, 0.5, 1, 2, 4, 8, 10 s (±20 %), 25.75 s in all. */
export const DEFAULT_RETRY_BACKOFF: Readonly<Required<BackoffOptions>> = {
  minMs: 250,
  maxMs: 10_000,
  factor: 2,
  jitter: 0.2,
};

/**
 * When a supervisor restarts a child that ended on its own: `permanent` always (after a crash
 * or a normal end), `transient` only after a crash, `temporary` never.
 */
export type RestartType = "permanent" | "transient" | "temporary";

/** A handler of message type `K`. */
export type Handler<P extends Protocol<P>, K extends keyof P, S> = (
  payload: PayloadOf<P, K>,
  ctx: ActorContext<P, S>,
) => HandlerResult<P, K> | Promise<HandlerResult<P, K>>;

/** The definition of an actor: what `defineActor` takes and `system.spawn` runs. */
// biome-ignore lint/suspicious/noExplicitAny: state is untyped unless the caller names S
export interface ActorDefinition<P extends Protocol<P> = any, S = any> {
  readonly kind?: "actor";
  /** The app id; its mailbox is `queue:<id>:inbox`. */
  id: string;
  /** Optional Standard Schema per message type; a payload that fails is dead-lettered. */
  schemas?: { [K in keyof P]?: StandardSchemaV1<unknown, PayloadOf<P, K>> };
  /**
   * Builds the state of each incarnation; runs again on restart. With `persist`, `ctx.saved` is
   * the last saved state (undefined the first time).
   */
  setup?: (ctx: SetupContext<P> & SavedState<S>) => S | Promise<S>;
  /**
   * Runs when an incarnation ends (stop, shutdown, crash, before a restart): clear timers,
   * close what `setup` opened. Its errors are logged and ignored.
   */
  teardown?: (ctx: SetupContext<P> & { state: S }) => void | Promise<void>;
  /** One handler per message type of the protocol. */
  handlers: { [K in keyof P]: Handler<P, K, S> };
  /**
   * Handles every message type that has no handler of its own (a recorder, a proxy); its
   * return value, if any, is the reply. Without it such messages are dead-lettered.
   * @default undefined (unknown types are dead-lettered as unknown-type)
   */
  fallback?: (payload: unknown, ctx: ActorContext<P, S>) => unknown;
  /**
   * The message type of the reply to each request type.
   * @default `<type>_reply`, as the Python peer does
   */
  replyTypes?: { [K in keyof P]?: string };
  /**
   * Message types arriving on `channel:broadcast` that this actor handles (with the handler of
   * the same name). Broadcasts are fire-and-forget: not stored, no status, no reply.
   * @default [] (none)
   */
  broadcasts?: readonly (keyof P & string)[];
  /**
   * How many messages one claim takes from the inbox; smaller lets a later higher-priority
   * message start sooner, larger means fewer round trips.
   * @default the system's claimBatch (64)
   */
  claimBatch?: number;
  /**
   * What a handler's exception does to the actor (see FailureDirective).
   * @default "restart"
   */
  onFailure?: FailureDirective;
  /**
   * How many runs of a message may start before it is dead-lettered: runs that threw, and runs
   * that a dying process never finished. A message handed back unstarted (pre-emption, stop,
   * a batch-mate that killed the process) uses no attempt.
   * @default 8 (with the default retryBackoff, about 20 to 30 s of retries in all)
   */
  maxAttempts?: number;
  /**
   * Delay before a failed message is delivered again: 250 ms, doubling, at most 10 s, ±20 %,
   * so the default 8 attempts ride out a downstream outage of about 20 to 30 s.
   * @default { minMs: 250, maxMs: 10000, factor: 2, jitter: 0.2 }
   */
  retryBackoff?: BackoffOptions;
  /**
   * When its supervisor restarts it after it ended.
   * @default "permanent"
   */
  restart?: RestartType;
  /**
   * A handler still running after this many ms counts as failed (HandlerTimeoutError): its
   * `ctx.signal` is aborted and the message is retried or dead-lettered as for any failure.
   * Without it, a handler that never settles holds its message (its lease is renewed) forever.
   * @default undefined (no limit)
   */
  handlerTimeoutMs?: number;
  /**
   * How many processes may run this actor id at once. `"single"`: one; when several processes
   * spawn it, one owns it (fenced in Redis: the claim of any other is refused) and the others
   * stand by, taking it over, with a fresh `setup`, when the owner dies, stops or freezes past
   * three heartbeat periods; its state is one, its order strict. `"shared"`: every process
   * that spawns it consumes its inbox (competing consumers): more throughput for a stateless
   * worker pool, but each process has its own state and the order across processes is
   * interleaved. See the README, "Single activation".
   * @default "single"
   */
  activation?: "single" | "shared";
  /**
   * Persist `ctx.state` in Redis (`state:<id>`): after each message that completes, the state is
   * saved in the same atomic step that marks the message completed, so a message changes the
   * saved state exactly once even when its handler ran twice after a crash; a message that fails
   * or is retried changes nothing. `setup` gets the saved state as `ctx.saved` after a restart,
   * a process crash or another process's takeover. `true` takes every default; see
   * PersistOptions for `version`, `migrate` and `maxBytes`. Needs `activation: "single"`.
   * See the README, "Persisted state".
   * @default false
   */
  persist?: boolean | PersistOptions<S>;
}

/**
 * An actor family (virtual actors): one definition that serves every app id `<family>:<key>`.
 * An instance is activated on its first message on one process of the pool that spawned the
 * family, passivated after `idleMs` without a message (its memory given back), and activated
 * again on the next one; no instance ever has two activations (src/family.ts).
 */
// biome-ignore lint/suspicious/noExplicitAny: state is untyped unless the caller names S
export interface FamilyDefinition<P extends Protocol<P> = any, S = any>
  extends Omit<ActorDefinition<P, S>, "kind" | "id" | "activation" | "restart"> {
  readonly kind?: "family";
  /** The family's name: it serves the app ids `<family>:<key>` (e.g. `drone` serves `drone:42`). */
  family: string;
  /** A family has no id of its own: it serves every `<family>:<key>`. */
  id?: never;
  /**
   * An instance that has had no message for this long is passivated: its incarnation stops
   * (teardown runs) and its memory is given back, ms.
   * @default 60000
   */
  idleMs?: number;
}

/** What `system.spawn` returns for an actor family. */
export interface FamilyRef<P extends Protocol<P> = UntypedProtocol> {
  /** The family's name. */
  readonly family: string;
  /** A ref to the instance `<family>:<key>`, as `system.ref(\`${family}:${key}\`)`. */
  ref(key: string): ActorRef<P>;
  /** This process leaves the family's pool: its instances move to the other processes. */
  stop(): Promise<void>;
}

/**
 * Defines an actor typed by its protocol `P` (and, if named, its state `S`); with `family`
 * instead of `id`, an actor family.
 */
// The family overload comes first: TypeScript then still infers P from the handlers of an
// actor definition given without type arguments.
// biome-ignore lint/suspicious/noExplicitAny: state is untyped unless the caller names S
export function defineActor<P extends Protocol<P>, S = any>(
  definition: FamilyDefinition<P, S>,
): FamilyDefinition<P, S>;
// biome-ignore lint/suspicious/noExplicitAny: state is untyped unless the caller names S
export function defineActor<P extends Protocol<P>, S = any>(
  definition: ActorDefinition<P, S>,
): ActorDefinition<P, S>;
export function defineActor(
  definition: ActorDefinition | FamilyDefinition,
): ActorDefinition | FamilyDefinition {
  if (isFamilyDefinition(definition)) {
    checkFamilyDefinition(definition);
    return { ...definition, kind: "family" };
  }
  checkActorDefinition(definition);
  return { kind: "actor", ...definition };
}

/** True for the definition of an actor family (it names `family`, not `id`). */
export function isFamilyDefinition(definition: unknown): definition is FamilyDefinition {
  return (
    typeof definition === "object" &&
    definition !== null &&
    ((definition as FamilyDefinition).kind === "family" || "family" in definition)
  );
}

/**
 * Checks a family definition: its name is a valid app id prefix (rules as for ids, plus the
 * layout's), `idleMs` and the options it shares with actors.
 * @throws InvalidIdError for the name, InvalidOptionError for an option.
 */
export function checkFamilyDefinition(definition: FamilyDefinition, rules: IdRules = {}): void {
  requireObject("family definition", definition);
  checkId(definition.family, "family name", rules);
  if ((definition as { id?: unknown }).id !== undefined) {
    throw new InvalidOptionError(
      "id",
      (definition as { id?: unknown }).id,
      `a family definition names "family", not "id": it serves every id "${definition.family}:<key>"`,
    );
  }
  checkNumber(
    `idleMs of family "${definition.family}"`,
    definition.idleMs,
    { above: 0, unit: "ms" },
    "60000",
  );
  checkActorDefinition({ ...definition, id: `${definition.family}:x`, kind: "actor" }, rules);
}

/**
 * Checks an actor definition before anything runs: its id (src/ids.ts; `rules` adds the
 * layout's, which only the system knows) and the type and range of each option.
 * @throws InvalidIdError for the id, InvalidOptionError for an option.
 */
export function checkActorDefinition(definition: ActorDefinition, rules: IdRules = {}): void {
  requireObject("actor definition", definition);
  checkId(definition.id, "actor id", rules);
  const at = (option: string) => `${option} of actor "${definition.id}"`;
  requireObject(at("handlers"), definition.handlers);
  checkObject(at("schemas"), definition.schemas);
  checkObject(at("replyTypes"), definition.replyTypes);
  checkFunction(at("setup"), definition.setup);
  checkFunction(at("teardown"), definition.teardown);
  checkFunction(at("fallback"), definition.fallback);
  checkStringArray(at("broadcasts"), definition.broadcasts, "[]");
  checkNumber(at("claimBatch"), definition.claimBatch, { integer: true, min: 1 }, "the system's claimBatch");
  const attempts = String(DEFAULT_MAX_ATTEMPTS);
  checkNumber(at("maxAttempts"), definition.maxAttempts, { integer: true, min: 1 }, attempts);
  checkNumber(at("handlerTimeoutMs"), definition.handlerTimeoutMs, { above: 0, unit: "ms" }, "no limit");
  checkOneOf(at("onFailure"), definition.onFailure, ["restart", "resume", "stop", "escalate"], '"restart"');
  checkOneOf(at("restart"), definition.restart, ["permanent", "transient", "temporary"], '"permanent"');
  checkOneOf(at("activation"), definition.activation, ["single", "shared"], '"single"');
  checkBackoff(at("retryBackoff"), definition.retryBackoff);
  checkPersist(at("persist"), definition);
}

/**
 * Checks the `persist` option: a boolean or `{ version?, migrate?, maxBytes? }`, and a single
 * activation (competing consumers would each save their own state over the others').
 */
function checkPersist(option: string, definition: ActorDefinition): void {
  const persist: unknown = definition.persist;
  if (persist === undefined || persist === false) return;
  if (persist !== true) {
    // true, false, or an object of PersistOptions.
    checkObject(option, persist, "false");
    const p = persist as PersistOptions;
    checkNumber(`${option}.version`, p.version, { integer: true, min: 1 }, "1");
    checkFunction(`${option}.migrate`, p.migrate);
    checkNumber(
      `${option}.maxBytes`,
      p.maxBytes,
      { integer: true, min: 1, max: MAX_STATE_BYTES_LIMIT, unit: "bytes" },
      "1048576",
    );
  }
  if (definition.activation === "shared") {
    throw new InvalidOptionError(
      option,
      persist,
      `invalid option ${option}: a persisted actor needs activation "single" (the default); with "shared", ` +
        "every process would save its own state over the others'. Leave activation out, or drop persist",
    );
  }
}
