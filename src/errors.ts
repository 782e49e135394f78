/** Typed errors. Each message says what happened and what to do about it. */

/** Base class of every error redactor throws. */
export class RedactorError extends Error {
  override name = "RedactorError";
}

/** A message on the wire is not in the shape docs/PROTOCOL.md describes. */
export class EnvelopeError extends RedactorError {
  override name = "EnvelopeError";
  constructor(
    /** The top-level field at fault, or `"json"` when the text is not JSON at all. */
    readonly field: string,
    detail: string,
  ) {
    super(`invalid message: field "${field}" ${detail}`);
  }
}

/** `ask()` got no reply in time. */
export class AskTimeoutError extends RedactorError {
  override name = "AskTimeoutError";
  constructor(
    readonly recipient: string,
    readonly messageType: string,
    readonly messageId: string,
    readonly timeoutMs: number,
  ) {
    super(
      `no reply from "${recipient}" to "${messageType}" (id ${messageId}) within ${timeoutMs} ms; ` +
        "check that the recipient is online (system.status) and handles this type, or raise timeoutMs",
    );
  }
}

/** A message is larger than `maxMessageBytes`. */
export class MessageTooLargeError extends RedactorError {
  override name = "MessageTooLargeError";
  constructor(
    readonly bytes: number,
    readonly limit: number,
  ) {
    super(
      `message is ${bytes} bytes, over the ${limit}-byte limit; send a reference to the data ` +
        "instead, or raise maxMessageBytes in createSystem() on every system that reads it",
    );
  }
}

/** A message status change that the lifecycle machine does not allow. */
export class IllegalTransitionError extends RedactorError {
  override name = "IllegalTransitionError";
  constructor(
    readonly from: string,
    readonly event: string,
  ) {
    super(`message lifecycle: event ${event} is not allowed in status "${from}"`);
  }
}

/** The system is shut down (or shutting down) and cannot do what was asked. */
export class SystemStoppedError extends RedactorError {
  override name = "SystemStoppedError";
  constructor(what: string) {
    super(`cannot ${what}: the system is shut down; create a new one with createSystem()`);
  }
}

/** An actor id is already running in this system. */
export class DuplicateActorError extends RedactorError {
  override name = "DuplicateActorError";
  constructor(
    readonly actorId: string,
    message = `actor "${actorId}" is already running in this system; stop it first or use another id`,
  ) {
    super(message);
  }
}

/**
 * One actor id spawned with different `activation` modes: a single-activation actor must not
 * have competing consumers elsewhere, and the reverse.
 */
export class ActivationConflictError extends RedactorError {
  override name = "ActivationConflictError";
  constructor(
    readonly actorId: string,
    detail: string,
  ) {
    super(
      `actor "${actorId}" ${detail}; spawn it with the same activation ("single" or "shared") in every process`,
    );
  }
}

/**
 * Redis cannot be reached or used: nothing listens there, or the connection is down. Its
 * subclasses name the other reasons a connection fails (RedisAuthError, RedisTlsError,
 * RedisMaxClientsError, RedisDatabaseError); `cause` keeps the error ioredis reported.
 */
export class RedisUnavailableError extends RedactorError {
  override name = "RedisUnavailableError";
}

/** A handler ran longer than its actor's `handlerTimeoutMs`. */
export class HandlerTimeoutError extends RedactorError {
  override name = "HandlerTimeoutError";
  constructor(
    readonly actorId: string,
    readonly messageType: string,
    readonly timeoutMs: number,
  ) {
    super(
      `handler of "${messageType}" in actor "${actorId}" ran longer than ${timeoutMs} ms; make it ` +
        "honour ctx.signal, split the work, or raise handlerTimeoutMs",
    );
  }
}

/** What to do about each reason an ask fails. */
const ASK_FAILED_ADVICE: Record<string, string> = {
  "handler-error": "fix the handler (it threw on its last attempt), or raise the actor's maxAttempts",
  "invalid-payload": "send a payload that passes the recipient's schema for this type",
  "unknown-type": "send a type the recipient handles, or add a handler (or a fallback) for it",
  "reply-error":
    "make the handler return a value that fits in maxMessageBytes and that JSON or superjson carries",
  "attempts-exhausted":
    "its consumer kept dying while running it; look for crashes in the recipient's process",
  "invalid-envelope": "the request breaks the envelope rules (docs/PROTOCOL.md); check the sender",
  cancelled: "it was a scheduled ask, cancelled (system.cancel) before it was due; it never ran",
};

/**
 * The recipient failed a request: it was dead-lettered (the handler threw on its last attempt,
 * the payload failed its schema, the type is unknown, the reply could not be sent, …) and an
 * error reply came back, so `ask()` rejects at once instead of waiting for its timeout.
 */
export class AskFailedError extends RedactorError {
  override name = "AskFailedError";
  constructor(
    readonly recipient: string,
    readonly messageType: string,
    /** The request's id. */
    readonly messageId: string,
    /**
     * Why it failed: the dead-letter reason (`handler-error`, `invalid-payload`, `unknown-type`,
     * `reply-error`, `attempts-exhausted`, `invalid-envelope`, …), `cancelled` for a scheduled ask
     * cancelled before it was due (system.cancel), or `error` when a peer's error reply gives none.
     */
    readonly reason: string,
    /** The error text the recipient reported (a handler's `Name: message`). */
    readonly detail: string,
  ) {
    super(
      `"${recipient}" failed "${messageType}" (id ${messageId}, ${reason}): ${detail}; ` +
        ((Object.hasOwn(ASK_FAILED_ADVICE, reason) ? ASK_FAILED_ADVICE[reason] : undefined) ??
          "see the recipient's logs and dead letters"),
    );
  }
}

/**
 * A value that neither JSON nor superjson carries faithfully (a function, a symbol, an instance of
 * a class superjson does not know, a circular structure, …): it is refused at the sender rather
 * than arriving altered.
 */
export class UnserializableValueError extends RedactorError {
  override name = "UnserializableValueError";
  constructor(
    /** Where the value sits, e.g. `payload.a[2]` or `payload.m.get("k")`. */
    readonly path: string,
    /** What is wrong with it and what to send instead. */
    readonly detail: string,
    options?: { cause?: unknown },
  ) {
    super(`cannot send ${path}: ${detail}`, options);
  }
}

/**
 * A claimed message's lease was lost while its handler ran (the process stalled longer than
 * `leaseMs`, or the message's hash is gone): another consumer may run it, and this run's outcome
 * will not be written. The reason of the handler's aborted `ctx.signal`.
 */
export class LeaseLostError extends RedactorError {
  override name = "LeaseLostError";
  constructor(
    readonly actorId: string,
    readonly messageId: string,
    readonly reason: string,
  ) {
    super(
      `actor "${actorId}" lost the lease of message ${messageId} (${reason}) while handling it; ` +
        "stop the work (another consumer may run it); keep handlers shorter than leaseMs or raise leaseMs",
    );
  }
}

/**
 * A persisted actor's state (`persist`), encoded, is larger than its `maxBytes`: it is not saved,
 * and the message that produced it fails as if its handler had thrown (retried, then
 * dead-lettered). Thrown by `setup` too when its state is already over the limit.
 */
export class StateTooLargeError extends RedactorError {
  override name = "StateTooLargeError";
  constructor(
    readonly actorId: string,
    readonly bytes: number,
    readonly limit: number,
  ) {
    super(
      `state of actor "${actorId}" is ${bytes} bytes encoded, over its ${limit}-byte limit; keep ` +
        "large data elsewhere (a key of its own, a store) and a reference in the state, or raise persist.maxBytes",
    );
  }
}

/**
 * A persisted actor's saved state cannot be loaded: it was saved under another `persist.version`
 * and the definition has no `migrate`, `migrate` threw, or the saved value is not a state redactor
 * wrote. Its `setup` does not run (the incarnation fails to start); `cause` keeps the error.
 */
export class StateLoadError extends RedactorError {
  override name = "StateLoadError";
  constructor(
    readonly actorId: string,
    /**
     * `version`: saved under another version and no `migrate`; `migrate`: migrate threw;
     * `decode`: the saved value is not a state redactor wrote.
     */
    readonly reason: "version" | "migrate" | "decode",
    detail: string,
    options?: { cause?: unknown },
  ) {
    super(`cannot load the saved state of actor "${actorId}": ${detail}`, options);
  }
}

/**
 * A persisted actor's state in memory moved ahead of the state saved in Redis: the completion of
 * a message that carried it was not written (its lease was lost, another process saved a newer
 * state, or Redis failed). The incarnation ends as a crash, so that its restart loads the saved
 * state again; the exit reason of that crash.
 */
export class StateNotSavedError extends RedactorError {
  override name = "StateNotSavedError";
  constructor(
    readonly actorId: string,
    readonly messageId: string,
    readonly reason: string,
    options?: { cause?: unknown },
  ) {
    super(
      `the state of actor "${actorId}" after message ${messageId} was not saved (${reason}); the actor ` +
        "restarts from its saved state. If this repeats, look for lost leases (keep handlers shorter " +
        "than leaseMs) or a second process running the actor",
      options,
    );
  }
}

/** The heartbeat thread could not start or its first beat failed: the process cannot show it is alive. */
export class HeartbeatError extends RedactorError {
  override name = "HeartbeatError";
}

/**
 * Redis' `maxmemory-policy` evicts keys (an `allkeys-*` or `volatile-*` policy), which silently
 * deletes inboxes, leases and presence; thrown by createSystem when `requireNoEviction` is set.
 */
export class EvictionPolicyError extends RedactorError {
  override name = "EvictionPolicyError";
  constructor(readonly policy: string) {
    super(
      `Redis evicts keys under memory pressure (maxmemory-policy ${policy}), which loses messages; ` +
        "set maxmemory-policy noeviction on the server (CONFIG SET maxmemory-policy noeviction, and " +
        "in redis.conf), or use a Redis of its own for redactor",
    );
  }
}

/** Why an id was refused (see src/ids.ts). */
export type InvalidIdRule =
  | "type"
  | "empty"
  | "too-long"
  | "control-character"
  | "lone-surrogate"
  | "brace"
  | "reserved";

/**
 * An app id (or another name) that would break the keyspace or the wire: empty, too long, with
 * a control character, with braces in the hash-tagged layout, or reserved. The message says which
 * rule it breaks and what an id may be.
 */
export class InvalidIdError extends RedactorError {
  override name = "InvalidIdError";
  constructor(
    /** The refused value. */
    readonly id: unknown,
    /** The rule it breaks. */
    readonly rule: InvalidIdRule,
    message: string,
  ) {
    super(message);
  }
}

/** An option has the wrong type or is out of range; the message names it and its range. */
export class InvalidOptionError extends RedactorError {
  override name = "InvalidOptionError";
  constructor(
    /** The option's path, e.g. `heartbeatMs` or `rootIntensity.withinMs`. */
    readonly option: string,
    /** The refused value. */
    readonly value: unknown,
    message: string,
  ) {
    super(message);
  }
}

/**
 * Redis refused the credentials: no password given where one is required (NOAUTH), a wrong user
 * name or password (WRONGPASS), or an ACL user without a permission redactor needs (NOPERM).
 */
export class RedisAuthError extends RedisUnavailableError {
  override name = "RedisAuthError";
}

/**
 * The TLS connection failed: the server's certificate is not trusted or does not name the host,
 * or one side does not speak TLS.
 */
export class RedisTlsError extends RedisUnavailableError {
  override name = "RedisTlsError";
}

/** The server has reached its `maxclients` limit and refuses new connections. */
export class RedisMaxClientsError extends RedisUnavailableError {
  override name = "RedisMaxClientsError";
}

/** The database index of the URL (`redis://host:port/<db>`) does not exist on the server. */
export class RedisDatabaseError extends RedisUnavailableError {
  override name = "RedisDatabaseError";
}

/** What to do about a Redis error reply, by its code (the reply's first word). */
const REDIS_ERROR_ADVICE: Readonly<Record<string, string>> = {
  OOM:
    "Redis is over maxmemory and refuses writes; free memory or raise maxmemory, then send again " +
    "(nothing was written)",
  NOPERM: "the Redis user lacks a permission redactor needs; see the ACL line in the README",
  READONLY: "this server is a read-only replica; connect to the primary",
  BUSY: "a script is running too long on the server; try again when it ends",
  LOADING: "Redis is loading its data set; try again in a moment",
  MISCONF: "Redis cannot persist to disk and refuses writes; fix its disk or persistence settings",
};

/**
 * Redis answered a command with an error reply (it refused to write under memory pressure, a
 * permission is missing, the server is a replica …). `code` is the reply's first word (`OOM`,
 * `NOPERM`, `READONLY` …); `cause` is the reply itself.
 */
export class RedisCommandError extends RedactorError {
  override name = "RedisCommandError";
  readonly code: string;
  constructor(what: string, cause: Error) {
    const code = /^([A-Z]+)\b/.exec(cause.message)?.[1] ?? "ERR";
    const advice = REDIS_ERROR_ADVICE[code];
    super(`Redis refused to ${what}: ${cause.message}${advice ? `; ${advice}` : ""}`, { cause });
    this.code = code;
  }
}

/**
 * `err` as a typed error: an error reply from Redis becomes a RedisCommandError saying what was
 * refused and what to do; anything else (already typed, or a connection failure) is returned as
 * it is.
 */
export function fromRedisReply(what: string, err: unknown): unknown {
  if (err instanceof RedactorError || !(err instanceof Error) || err.name !== "ReplyError") return err;
  return new RedisCommandError(what, err);
}

/**
 * A write reached the master but fewer of its replicas than `durability.replicas` confirmed it
 * within `durability.timeoutMs` (Redis' WAIT): if that master fails now, the write may be lost
 * with it. A send may be repeated safely (the same message id is a duplicate once it is in).
 */
export class ReplicationError extends RedactorError {
  override name = "ReplicationError";
  constructor(
    what: string,
    /** Replicas that confirmed the write. */
    readonly acknowledged: number,
    /** Replicas asked for. */
    readonly wanted: number,
    timeoutMs: number,
  ) {
    super(
      `${what}: only ${acknowledged} of ${wanted} replica(s) confirmed it within ${timeoutMs} ms; ` +
        "the master has it, but a failover now could lose it. Retry (a repeated send of the same id is " +
        "skipped as a duplicate), check that the master has that many replicas connected (INFO replication: " +
        "connected_slaves; a master without one never confirms), or lower durability.replicas",
    );
  }
}

/**
 * `forget` refused to delete an app's keys: a live process serves or owns the app, or a peer's
 * presence hash says it is online (src/hygiene.ts).
 */
export class AppInUseError extends RedactorError {
  override name = "AppInUseError";
  constructor(
    readonly app: string,
    /** Why it counts as in use, e.g. `online, served by <node>`. */
    readonly detail: string,
  ) {
    super(
      `app "${app}" is in use (${detail}); stop the processes that serve it first, or, if you are sure ` +
        "it is gone (a peer that died still says online), force it (redactor forget --force)",
    );
  }
}

/**
 * A durable timer's script (src/lua/timer-*.lua) refused its arguments: a bug in redactor, not in
 * the caller's code; report it with the message.
 */
export class TimerScriptError extends RedactorError {
  override name = "TimerScriptError";
}

/**
 * The dashboard cannot be served (src/dashboard/server.ts): its port is taken, its host cannot be
 * bound, or the system does not expose its Redis connection. The message says what to change.
 */
export class DashboardError extends RedactorError {
  override name = "DashboardError";
}
