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
  constructor(readonly actorId: string) {
    super(`actor "${actorId}" is already running in this system; stop it first or use another id`);
  }
}

/** `redis-server` or Redis itself cannot be reached. */
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
