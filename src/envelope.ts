/**
 * The envelope codec: the nine-field JSON message of docs/PROTOCOL.md. Encoding writes exactly those
 * fields in the peers' order; a payload that plain JSON cannot carry (Date, Map, Set, BigInt,
 * undefined, NaN …) goes through superjson and its metadata travels in one extra top-level
 * field, `payload_meta`. The Python peer rejects any extra field, so such messages are only for
 * redactor (or superjson-aware) readers. A value that neither carries faithfully (a function, a
 * class instance superjson does not know, a cycle, …) is refused before anything is sent, with
 * UnserializableValueError naming its path. Decoding accepts everything the peers write.
 */
import { randomUUID } from "node:crypto";
import superjson, { type SuperJSON } from "superjson";
import { type Clock, localClock } from "./clock.js";
import { EnvelopeError, UnserializableValueError } from "./errors.js";
import { isPriority, type Priority } from "./priority.js";

/** A message as it travels on the wire. */
export interface Envelope<P = unknown> {
  /** Unique id; the peers use uuid4 strings but any text is accepted. */
  id: string;
  /** App id of the sender; replies go to its inbox. */
  sender: string;
  /** App id of the recipient. */
  recipient: string;
  /** Routes the message to a handler. */
  message_type: string;
  /** The content. */
  payload: P;
  /** 1 LOW, 2 NORMAL, 3 HIGH, 4 CRITICAL. */
  priority: Priority;
  /** Unix time in seconds when it was sent. */
  timestamp: number;
  /** For a reply: the id of the request it answers. */
  reply_to: string | null;
  /** Seconds after `timestamp` past which the message must not start. */
  timeout: number | null;
}

/** The extra top-level field that carries superjson metadata. */
export const PAYLOAD_META_FIELD = "payload_meta";

/** A fresh message id (uuid4, like the Python peer's). */
export function newMessageId(): string {
  return randomUUID();
}

/** Prefix of the id of a handler's reply: `reply_<request id>`. */
export const REPLY_ID_PREFIX = "reply_";

/**
 * The id of the reply to request `requestId`: one id per request, so a reply sent again (its
 * handler ran again after a crash, or the send was repeated) is a duplicate that the send script
 * skips, and an asker never gets two replies. Error replies use `error_<request id>`.
 */
export function replyIdOf(requestId: string): string {
  return `${REPLY_ID_PREFIX}${requestId}`;
}

/** What a new outgoing message is made of; the rest is filled in by `createEnvelope`. */
export interface NewMessage {
  sender: string;
  recipient: string;
  type: string;
  payload: unknown;
  /** @default Priority.NORMAL */
  priority?: Priority;
  /** Deadline after sending, ms; the wire carries whole seconds, rounded up. @default none */
  timeoutMs?: number;
  /** @default a fresh uuid4 */
  id?: string;
}

/**
 * A new message, stamped now by `clock` (µs, strictly increasing for that clock). A system passes
 * its own clock, which follows Redis' time (src/clock.ts), so deadlines hold whatever the local
 * clock says.
 */
export function createEnvelope(m: NewMessage, clock: Clock = localClock): Envelope {
  return {
    id: m.id ?? newMessageId(),
    sender: m.sender,
    recipient: m.recipient,
    message_type: m.type,
    payload: m.payload,
    priority: m.priority ?? 2,
    timestamp: clock.nowMicros() / 1e6,
    reply_to: null,
    timeout: m.timeoutMs === undefined ? null : Math.max(1, Math.ceil(m.timeoutMs / 1000)),
  };
}

/** The typed arrays superjson rebuilds, by their exact class. */
const TYPED_ARRAYS: ReadonlySet<unknown> = new Set([
  Int8Array,
  Uint8Array,
  Uint8ClampedArray,
  Int16Array,
  Uint16Array,
  Int32Array,
  Uint32Array,
  Float32Array,
  Float64Array,
  BigInt64Array,
  BigUint64Array,
]);

/** Keys superjson refuses (prototype pollution); only a payload that needs superjson is affected. */
const SUPERJSON_RESERVED_KEYS: ReadonlySet<string> = new Set(["__proto__", "constructor", "prototype"]);

/**
 * Deepest nesting of objects and arrays a payload may have. JSON parsers stop somewhere (Redis'
 * cjson at 1000 levels, with the envelope around the payload), and a member they cannot read
 * would be dead-lettered at the receiver.
 */
export const MAX_PAYLOAD_DEPTH = 500;

/** The registries of superjson's default instance (`superjson.registerClass` and friends). */
const registries = (superjson as unknown as { defaultInstance: SuperJSON }).defaultInstance;

const IDENTIFIER = /^[A-Za-z_$][\w$]*$/;

/**
 * One step of a path inside a payload: an object key, an array index, or a step into a Map or a
 * Set already written out (`.get("k")`, `.values()[1]`).
 */
type Step = string | number | { text: string };

function stepText(step: Step): string {
  if (typeof step === "number") return `[${step}]`;
  if (typeof step === "string") return IDENTIFIER.test(step) ? `.${step}` : `[${JSON.stringify(step)}]`;
  return step.text;
}

function className(value: object): string {
  const ctor = (value as { constructor?: { name?: unknown } }).constructor;
  return typeof ctor?.name === "string" && ctor.name !== "" ? ctor.name : "an anonymous class";
}

/**
 * Walks a payload that is not plain JSON: refuses what cannot travel faithfully, and notes what
 * needs superjson. The path is kept as a stack of steps and written out only for an error.
 */
class PayloadCheck {
  /** Some value needs superjson (Date, Map, BigInt, NaN, undefined in an array, …). */
  superjson = false;
  /** The first key that superjson would refuse, if any. */
  reservedKey: string | undefined;
  /** The objects from the root to the value being looked at (for cycles and depth). */
  private readonly objects: object[] = [];
  /** The steps from the root to the value being looked at. */
  private readonly steps: Step[] = [];

  constructor(private readonly root: string) {}

  /** The path of the value being looked at, plus `extra` steps. */
  private path(...extra: Step[]): string {
    let text = this.root;
    for (const step of this.steps) text += stepText(step);
    for (const step of extra) text += stepText(step);
    return text;
  }

  private refuse(detail: string, ...extra: Step[]): UnserializableValueError {
    return new UnserializableValueError(this.path(...extra), detail);
  }

  private visitAt(step: Step, value: unknown): void {
    this.steps.push(step);
    this.visit(value);
    this.steps.pop();
  }

  visit(value: unknown): void {
    switch (typeof value) {
      case "string":
      case "boolean":
        return;
      case "number":
        // NaN, ±Infinity and -0 become null or 0 in JSON; superjson keeps them.
        if (!Number.isFinite(value) || Object.is(value, -0)) this.superjson = true;
        return;
      case "undefined":
      case "bigint":
        this.superjson = true;
        return;
      case "symbol":
        if (registries.symbolRegistry.getIdentifier(value) !== undefined) {
          this.superjson = true;
          return;
        }
        throw this.refuse(
          `${String(value)} is a symbol, which has no JSON form; send a string, or register the ` +
            "symbol with superjson.registerSymbol in every process that reads it",
        );
      case "function":
        throw this.refuse(
          `a function (${value.name || "anonymous"}) cannot be sent; send data and keep the code on both sides`,
        );
      default:
        if (value !== null) this.visitObject(value as object);
    }
  }

  private visitObject(value: object): void {
    const at = this.objects.indexOf(value);
    if (at >= 0) {
      const back = this.root + this.steps.slice(0, at).map(stepText).join("");
      throw this.refuse(
        `a circular reference (back to ${back}); send a tree, with ids where an object refers back`,
      );
    }
    if (this.objects.length >= MAX_PAYLOAD_DEPTH) {
      throw this.refuse(
        `nested deeper than ${MAX_PAYLOAD_DEPTH} levels, more than JSON parsers (Redis' among them) read; flatten it`,
      );
    }
    this.objects.push(value);
    this.visitContents(value);
    this.objects.pop();
  }

  private visitContents(value: object): void {
    const proto = Object.getPrototypeOf(value);
    if (proto === Object.prototype || proto === null) {
      this.visitProperties(value);
      return;
    }
    if (Array.isArray(value)) {
      if (proto !== Array.prototype) throw this.classInstance(value);
      const length = value.length;
      for (let i = 0; i < length; i++) {
        if (!(i in value)) {
          throw this.refuse(
            "a hole in a sparse array, which would arrive as null; fill it (with undefined or null)",
            i,
          );
        }
        this.visitAt(i, value[i]);
      }
      return;
    }
    if (registries.customTransformerRegistry.findApplicable(value)) {
      this.superjson = true;
      return;
    }
    if (registries.classRegistry.getIdentifier(value.constructor as never) !== undefined) {
      this.superjson = true;
      this.visitProperties(value);
      return;
    }
    if (value instanceof Error) {
      // Carried as an Error with its name, message and cause (README, "Typed protocols").
      this.superjson = true;
      if ("cause" in value) this.visitAt("cause", value.cause);
      return;
    }
    switch (proto) {
      case Date.prototype:
        if (Number.isNaN((value as Date).getTime())) {
          throw this.refuse("an invalid Date, which would arrive as null; send null");
        }
        this.superjson = true;
        return;
      case RegExp.prototype:
      case URL.prototype:
        this.superjson = true;
        return;
      case Map.prototype: {
        this.superjson = true;
        let i = 0;
        for (const [key, item] of value as Map<unknown, unknown>) {
          this.visitAt({ text: `.keys()[${i}]` }, key);
          const named = typeof key === "string" || typeof key === "number";
          this.visitAt({ text: named ? `.get(${JSON.stringify(key)})` : `.values()[${i}]` }, item);
          i += 1;
        }
        return;
      }
      case Set.prototype: {
        this.superjson = true;
        let i = 0;
        for (const item of value as Set<unknown>) {
          this.visitAt({ text: `.values()[${i}]` }, item);
          i += 1;
        }
        return;
      }
    }
    if (ArrayBuffer.isView(value) && TYPED_ARRAYS.has(value.constructor)) {
      this.superjson = true;
      return;
    }
    throw this.classInstance(value);
  }

  /** The own enumerable string-keyed properties of an object: what JSON and superjson carry. */
  private visitProperties(value: object): void {
    const record = value as Record<string, unknown>;
    for (const key of Object.keys(record)) {
      const item = record[key];
      // Left out, as JSON.stringify does: an optional field the peers may omit.
      if (item === undefined) continue;
      if (this.reservedKey === undefined && SUPERJSON_RESERVED_KEYS.has(key))
        this.reservedKey = this.path(key);
      this.visitAt(key, item);
    }
  }

  private classInstance(value: object): UnserializableValueError {
    const name = className(value);
    if (value instanceof Promise) return this.refuse("a Promise; await it and send its value");
    if (value instanceof Number || value instanceof String || value instanceof Boolean) {
      return this.refuse(`a boxed ${name}; send the primitive (value.valueOf())`);
    }
    if (ArrayBuffer.isView(value) || value instanceof ArrayBuffer) {
      return this.refuse(
        `a ${name}, which superjson does not rebuild; send a plain typed array (Uint8Array.from(…)) or a base64 string`,
      );
    }
    return this.refuse(
      `an instance of ${name}, a class superjson does not know: it would arrive as a plain object ` +
        "without its methods; send plain data, or register the class with superjson.registerClass in every process that reads it",
    );
  }
}

/**
 * True when `value` is plain JSON that round-trips unchanged: the fast path of payloadEncoding,
 * with no path kept. Anything else (a value that needs superjson, one that must be refused, a
 * cycle, which ends up too deep) is left to the full check.
 */
function isPlainJson(value: unknown, depth: number): boolean {
  switch (typeof value) {
    case "string":
    case "boolean":
      return true;
    case "number":
      return Number.isFinite(value) && !Object.is(value, -0);
    case "object": {
      if (value === null) return true;
      if (depth >= MAX_PAYLOAD_DEPTH) return false;
      const proto = Object.getPrototypeOf(value);
      if (proto === Array.prototype) {
        const array = value as unknown[];
        for (let i = 0; i < array.length; i++) {
          // A hole reads as undefined, which is not plain JSON in an array.
          if (!isPlainJson(array[i], depth + 1)) return false;
        }
        return true;
      }
      if (proto !== Object.prototype && proto !== null) return false;
      const record = value as Record<string, unknown>;
      for (const key in record) {
        const item = record[key];
        if (item !== undefined && !isPlainJson(item, depth + 1)) return false;
      }
      return true;
    }
    default:
      return false;
  }
}

/**
 * Checks that a payload can travel faithfully and says how: `"json"` when plain JSON carries it
 * unchanged, `"superjson"` when it needs superjson (Date, Map, Set, BigInt, RegExp, URL, Error,
 * typed arrays, NaN, ±Infinity, -0, undefined other than as an object field, registered classes,
 * symbols and custom transformers). An object field whose value is `undefined` is left out, as
 * JSON.stringify does.
 * @throws UnserializableValueError naming the path (`payload.a[2]`) of the first value that
 *   neither carries faithfully: a function, an unregistered symbol, an instance of a class
 *   superjson does not know, a boxed primitive, a circular reference, a sparse array, an
 *   invalid Date, nesting deeper than MAX_PAYLOAD_DEPTH, or (with superjson only) a key named
 *   `__proto__`, `constructor` or `prototype`.
 */
export function payloadEncoding(payload: unknown, path = "payload"): "json" | "superjson" {
  if (isPlainJson(payload, 0)) return "json";
  const check = new PayloadCheck(path);
  check.visit(payload);
  if (!check.superjson) return "json";
  if (check.reservedKey !== undefined) {
    throw new UnserializableValueError(
      check.reservedKey,
      "superjson, which this payload needs for its other values, refuses the keys __proto__, " +
        "constructor and prototype; rename the key",
    );
  }
  return "superjson";
}

/**
 * The JSON text of an envelope, fields in the peers' order.
 * @throws EnvelopeError when id, sender, recipient or message_type is not a non-empty string (a
 *   receiver would refuse it); UnserializableValueError when the payload cannot travel faithfully
 *   (see payloadEncoding)
 */
export function encodeEnvelope(env: Envelope): string {
  // What decodeEnvelope refuses is refused here, before anything is sent: a receiver would
  // dead-letter it.
  for (const field of ["id", "sender", "recipient", "message_type"] as const) {
    const value: unknown = env[field];
    if (typeof value !== "string" || value.length === 0)
      throw new EnvelopeError(
        field,
        `must be a non-empty string, got ${JSON.stringify(value)}; nothing was sent`,
      );
  }
  let payload: unknown = env.payload;
  let meta: unknown;
  if (payloadEncoding(payload) === "superjson") {
    let serialized: ReturnType<typeof superjson.serialize>;
    try {
      serialized = superjson.serialize(payload as never);
    } catch (err) {
      throw new UnserializableValueError(
        "payload",
        `superjson cannot encode it (${(err as Error).message})`,
        {
          cause: err,
        },
      );
    }
    // A payload that is undefined itself still needs its field: null, with the meta to restore it.
    payload = serialized.json === undefined ? null : serialized.json;
    meta = serialized.meta;
  }
  const wire: Record<string, unknown> = {
    id: env.id,
    sender: env.sender,
    recipient: env.recipient,
    message_type: env.message_type,
    payload,
    priority: env.priority,
    timestamp: env.timestamp,
    reply_to: env.reply_to,
    timeout: env.timeout,
  };
  if (meta !== undefined) wire[PAYLOAD_META_FIELD] = meta;
  return JSON.stringify(wire);
}

function requireString(data: Record<string, unknown>, field: string): string {
  const value = data[field];
  if (typeof value === "string" && value.length > 0) return value;
  if (value === undefined) throw new EnvelopeError(field, "is missing");
  throw new EnvelopeError(field, `must be a non-empty string, got ${JSON.stringify(value)}`);
}

function optionalId(data: Record<string, unknown>, field: string): string | null {
  const value = data[field];
  if (value === undefined || value === null) return null;
  if (typeof value === "string") return value;
  if (typeof value === "number" && Number.isSafeInteger(value)) return String(value);
  throw new EnvelopeError(field, `must be a string or null, got ${JSON.stringify(value)}`);
}

/** Parses and checks one wire message; throws EnvelopeError naming the faulty field. */
export function decodeEnvelope(text: string): Envelope {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (err) {
    throw new EnvelopeError("json", `is not valid JSON (${(err as Error).message})`);
  }
  if (typeof data !== "object" || data === null || Array.isArray(data)) {
    throw new EnvelopeError("json", "must be a JSON object");
  }
  const obj = data as Record<string, unknown>;
  const id = optionalId(obj, "id");
  if (id === null || id === "") throw new EnvelopeError("id", "is missing");
  const sender = requireString(obj, "sender");
  const recipient = requireString(obj, "recipient");
  const messageType = requireString(obj, "message_type");
  if (!("payload" in obj)) throw new EnvelopeError("payload", "is missing");
  const priority = obj.priority;
  if (!isPriority(priority)) {
    throw new EnvelopeError("priority", `must be an integer 1-4, got ${JSON.stringify(priority)}`);
  }
  const timestamp = obj.timestamp;
  if (typeof timestamp !== "number" || !Number.isFinite(timestamp) || timestamp < 0) {
    throw new EnvelopeError("timestamp", `must be Unix seconds, got ${JSON.stringify(timestamp)}`);
  }
  const timeout = obj.timeout ?? null;
  if (timeout !== null && (typeof timeout !== "number" || !Number.isFinite(timeout) || timeout < 0)) {
    throw new EnvelopeError("timeout", `must be seconds or null, got ${JSON.stringify(timeout)}`);
  }
  let payload = obj.payload;
  const meta = obj[PAYLOAD_META_FIELD];
  if (meta !== undefined && meta !== null) {
    try {
      payload = superjson.deserialize({ json: payload as never, meta: meta as never });
    } catch (err) {
      throw new EnvelopeError(PAYLOAD_META_FIELD, `cannot be applied (${(err as Error).message})`);
    }
  }
  return {
    id,
    sender,
    recipient,
    message_type: messageType,
    payload,
    priority,
    timestamp,
    reply_to: optionalId(obj, "reply_to"),
    timeout,
  };
}

/**
 * A member read as a JSON object, for code that only looks at its fields (never re-encodes it):
 * `{}` when it is not JSON or not an object.
 */
export function jsonObjectOf(member: string): Record<string, unknown> {
  try {
    const parsed: unknown = JSON.parse(member);
    if (parsed && typeof parsed === "object" && !Array.isArray(parsed))
      return parsed as Record<string, unknown>;
  } catch {
    // Not JSON: nothing is known.
  }
  return {};
}
