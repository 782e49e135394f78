/**
 * Persisted actor state (`defineActor({ persist })`): how an actor's `ctx.state` is encoded for
 * Redis, held to its size limit, loaded back and migrated to the definition's version.
 *
 * The codec is the envelope's (src/envelope.ts): a state that plain JSON carries unchanged is
 * stored as JSON, one that needs superjson (Date, Map, Set, BigInt, …) with superjson's metadata;
 * a value neither carries faithfully (a function, an instance of an unknown class, a cycle) is
 * refused with UnserializableValueError rather than saved altered. The stored text is superjson's
 * own result shape, `{"json": …}` or `{"json": …, "meta": …}`, so `superjson.parse` reads both.
 *
 * In Redis the state is the hash `state:<app>` (src/keyspace.ts, docs/PROTOCOL.md): `v` (the
 * definition's `persist.version` that saved it), `data` (the text above), `seq` (how many
 * states were saved: each save names the `seq` it was computed from, and finish.lua refuses it
 * unless that is still the saved one), `msg` (the id of the message whose completion saved it)
 * and `at` (Redis time of the save, ms). finish.lua writes it in the same atomic step that
 * completes the message, so a message changes the saved state exactly once.
 */
import superjson from "superjson";
import type { RedisClient } from "./cluster.js";
import { payloadEncoding } from "./envelope.js";
import { StateLoadError, StateTooLargeError, UnserializableValueError } from "./errors.js";

/** The `persist` option of an actor in its object form. */
export interface PersistOptions<S = unknown> {
  /**
   * The version of the state's shape, a whole number ≥ 1, saved with the state. When the saved
   * version differs, `migrate` turns the saved state into this version's before `setup` sees it.
   * @default 1
   */
  version?: number;
  /**
   * Turns a state saved under version `fromVersion` (older, or newer after a rollback of the code)
   * into a state of this `version`; it may be async. Its result is `ctx.saved`, and is saved under
   * the new version with the next completed message. Without it, a saved state of another version
   * fails the start with StateLoadError (reason `version`).
   * @default undefined (no migration: a version change fails the start)
   */
  migrate?: (old: unknown, fromVersion: number) => S | Promise<S>;
  /**
   * Largest encoded state, in bytes of UTF-8; a larger one is not saved and its message fails
   * with StateTooLargeError (retried, then dead-lettered, as a handler error).
   * @default 1048576 (1 MiB)
   */
  maxBytes?: number;
}

/** Default `persist.version`. */
export const DEFAULT_STATE_VERSION = 1;

/** Default `persist.maxBytes`: 1 MiB. */
export const DEFAULT_MAX_STATE_BYTES = 1_048_576;

/** Largest `persist.maxBytes` accepted: 512 MiB, Redis' largest string. */
export const MAX_STATE_BYTES_LIMIT = 512 * 1_048_576;

/** The resolved `persist` option of an actor. */
export interface Persistence {
  version: number;
  migrate: PersistOptions["migrate"];
  maxBytes: number;
}

/** The resolved persistence of an actor whose `persist` option is `option`; undefined when off. */
export function persistence(option: boolean | PersistOptions | undefined): Persistence | undefined {
  if (option === undefined || option === false) return undefined;
  const o = option === true ? {} : option;
  return {
    version: o.version ?? DEFAULT_STATE_VERSION,
    migrate: o.migrate,
    maxBytes: o.maxBytes ?? DEFAULT_MAX_STATE_BYTES,
  };
}

/**
 * Encodes actor `actorId`'s state for its hash's `data` field.
 * @throws UnserializableValueError (path `state…`) when JSON and superjson cannot carry it
 *   faithfully; StateTooLargeError when the encoding is over `maxBytes`.
 */
export function encodeState(actorId: string, state: unknown, p: Persistence): string {
  let data: string;
  if (payloadEncoding(state, "state") === "json") {
    data = JSON.stringify({ json: state });
  } else {
    try {
      data = superjson.stringify(state as never);
    } catch (err) {
      throw new UnserializableValueError("state", `superjson cannot encode it (${(err as Error).message})`, {
        cause: err,
      });
    }
  }
  // A UTF-8 byte count only when the text may be over: a character is at most 3 bytes.
  const bytes = data.length > p.maxBytes / 3 ? Buffer.byteLength(data) : 0;
  if (bytes > p.maxBytes) throw new StateTooLargeError(actorId, bytes, p.maxBytes);
  return data;
}

/**
 * Decodes a `data` field written by encodeState.
 * @throws StateLoadError (reason `decode`) when it is not such a text.
 */
export function decodeState(actorId: string, data: string): unknown {
  let parsed: unknown;
  try {
    parsed = JSON.parse(data);
  } catch (err) {
    throw new StateLoadError(actorId, "decode", "its data field is not JSON; was it written by redactor?", {
      cause: err,
    });
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    throw new StateLoadError(actorId, "decode", 'its data field is not a {"json", "meta"} object');
  }
  try {
    return superjson.deserialize(parsed as never);
  } catch (err) {
    throw new StateLoadError(
      actorId,
      "decode",
      `its superjson metadata cannot be applied (${(err as Error).message})`,
      {
        cause: err,
      },
    );
  }
}

/** What was saved for an actor, loaded and brought to the definition's version. */
export interface LoadedState {
  /** The saved state (migrated when it was saved under another version); undefined when none. */
  saved: unknown;
  /** The `seq` of the saved state (0 when none): the next save must name it. */
  seq: number;
}

/**
 * Reads the state saved for `actorId` from the hash `key` and brings it to `p.version`
 * (`migrate`). Send it on the connection that wrote the actor's earlier completions, so that
 * it is read after them.
 * @throws StateLoadError (reason `version`, `migrate` or `decode`); Redis' errors as they come.
 */
export async function loadState(
  redis: RedisClient,
  key: string,
  actorId: string,
  p: Persistence,
): Promise<LoadedState> {
  const [v, data, seqText] = await redis.hmget(key, "v", "data", "seq");
  const seq = seqText === null ? 0 : Number(seqText);
  if (!Number.isSafeInteger(seq) || seq < 0) {
    throw new StateLoadError(actorId, "decode", `its seq field is ${JSON.stringify(seqText)}, not a count`);
  }
  if (data === null || data === undefined) return { saved: undefined, seq };
  const version = Number(v);
  if (!Number.isSafeInteger(version) || version < 1) {
    throw new StateLoadError(
      actorId,
      "decode",
      `its version field is ${JSON.stringify(v)}, not a whole number ≥ 1`,
    );
  }
  const old = decodeState(actorId, data);
  if (version === p.version) return { saved: old, seq };
  if (!p.migrate) {
    throw new StateLoadError(
      actorId,
      "version",
      `it was saved by version ${version} and the actor is now version ${p.version}; add ` +
        `persist.migrate(old, fromVersion) to defineActor to turn a version-${version} state into a ` +
        `version-${p.version} one (or set persist.version back to ${version})`,
    );
  }
  try {
    return { saved: await p.migrate(old, version), seq };
  } catch (err) {
    throw new StateLoadError(
      actorId,
      "migrate",
      `persist.migrate(old, ${version}) threw: ${err instanceof Error ? err.message : String(err)}`,
      { cause: err },
    );
  }
}
