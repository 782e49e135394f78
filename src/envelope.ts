/**
 * The envelope codec: the nine-field JSON message of docs/PROTOCOL.md. Encoding writes exactly those
 * fields in the peers' order; a payload that plain JSON cannot carry (Date, Map, Set, BigInt,
 * undefined, NaN …) goes through superjson and its metadata travels in one extra top-level
 * field, `payload_meta`. The Python peer rejects any extra field, so such messages are only for
 * redactor (or superjson-aware) readers. Decoding accepts everything the peers write.
 */
import { randomUUID } from "node:crypto";
import superjson from "superjson";
import { EnvelopeError } from "./errors.js";
import { isPriority, monotonicMicros, type Priority } from "./priority.js";

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

/** A new message, stamped now (µs, strictly increasing in this process). */
export function createEnvelope(m: NewMessage): Envelope {
  return {
    id: m.id ?? newMessageId(),
    sender: m.sender,
    recipient: m.recipient,
    message_type: m.type,
    payload: m.payload,
    priority: m.priority ?? 2,
    timestamp: monotonicMicros() / 1e6,
    reply_to: null,
    timeout: m.timeoutMs === undefined ? null : Math.max(1, Math.ceil(m.timeoutMs / 1000)),
  };
}

/** True when `value` survives JSON.stringify/parse unchanged. */
function isPlainJson(value: unknown, depth = 0): boolean {
  if (depth > 64) return false;
  switch (typeof value) {
    case "string":
    case "boolean":
      return true;
    case "number":
      return Number.isFinite(value);
    case "object": {
      if (value === null) return true;
      if (Array.isArray(value)) {
        for (const item of value) if (!isPlainJson(item, depth + 1)) return false;
        return true;
      }
      const proto = Object.getPrototypeOf(value);
      if (proto !== Object.prototype && proto !== null) return false;
      for (const key in value) {
        const item = (value as Record<string, unknown>)[key];
        // An undefined property is dropped by JSON, as the peers expect of an optional field;
        // sending it through superjson would add payload_meta, which the Python peer rejects.
        if (item !== undefined && !isPlainJson(item, depth + 1)) return false;
      }
      return true;
    }
    default:
      return false;
  }
}

/** The JSON text of an envelope, fields in the peers' order. */
export function encodeEnvelope(env: Envelope): string {
  let payload: unknown = env.payload;
  let meta: unknown;
  if (!isPlainJson(payload)) {
    const serialized = superjson.serialize(payload);
    payload = serialized.json;
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
