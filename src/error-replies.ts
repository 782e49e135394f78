/**
 * Error replies: how a requester learns that its request failed, in the convention of the peers'
 * guide (seed COMMUNICATION_SYSTEM_DOCS.md, "Handler Implementation"): a reply with id
 * `error_<request id>` whose payload is `{"status": "error", "message": <text>}`. redactor fills
 * in `reply_to` (so a Python `wait_for_reply` stops waiting) and adds the dead-letter `reason`
 * to the payload; the message keeps the envelope's nine fields, so every peer can read it.
 */
import { Buffer } from "node:buffer";
import type { Envelope } from "./envelope.js";
import { isPriority, Priority } from "./priority.js";

/** The prefix of an error reply's id; the request's id follows. */
export const ERROR_REPLY_PREFIX = "error_";

/** The most characters of error text an error reply carries (the rest is cut, marked "…"). */
const MAX_ERROR_TEXT = 4000;

/** The payload of an error reply. */
export interface ErrorReplyPayload {
  status: "error";
  /** The error text: a handler's `Name: message`, or why the request was refused. */
  message: string;
  /** The dead-letter reason (`handler-error`, `invalid-payload`, …); redactor adds it. */
  reason: string;
}

/** The parts of a request an error reply needs. */
export interface FailedRequest {
  sender: string;
  messageType: string;
  priority: Priority;
}

/**
 * The request a stored member carries, read leniently (the member may have failed the envelope
 * rules), or undefined when it is not a request: a request names its sender, carries a
 * `timeout` (every ask does, as does the Python peer's `wait_for_reply`) and is not itself a
 * reply. Someone may be waiting for an answer to exactly these.
 */
export function failedRequest(member: string | Uint8Array): FailedRequest | undefined {
  let data: unknown;
  try {
    data = JSON.parse(typeof member === "string" ? member : Buffer.from(member).toString("utf8"));
  } catch {
    return undefined;
  }
  if (typeof data !== "object" || data === null || Array.isArray(data)) return undefined;
  const m = data as Record<string, unknown>;
  if (typeof m.sender !== "string" || m.sender === "") return undefined;
  if (typeof m.timeout !== "number" || !Number.isFinite(m.timeout)) return undefined;
  if (m.reply_to !== undefined && m.reply_to !== null) return undefined;
  return {
    sender: m.sender,
    messageType: typeof m.message_type === "string" ? m.message_type : "",
    priority: isPriority(m.priority) ? m.priority : Priority.NORMAL,
  };
}

/**
 * The error reply to request `requestId`, sent by `sender` as `messageType` (what a normal reply
 * to it would be), stamped `timestamp` (Unix seconds, as any reply the sender writes); `text`
 * longer than 4000 characters is cut.
 */
export function errorReply(
  requestId: string,
  request: FailedRequest,
  sender: string,
  messageType: string,
  reason: string,
  text: string,
  timestamp: number,
): Envelope<ErrorReplyPayload> {
  const message = text.length > MAX_ERROR_TEXT ? `${text.slice(0, MAX_ERROR_TEXT)}…` : text;
  return {
    id: `${ERROR_REPLY_PREFIX}${requestId}`,
    sender,
    recipient: request.sender,
    message_type: messageType,
    payload: { status: "error", message, reason },
    priority: request.priority,
    timestamp,
    reply_to: requestId,
    timeout: null,
  };
}

/**
 * When `message` is an error reply to request `requestId` (its id is `error_<requestId>` and its
 * payload says `"status": "error"`), its reason (`error` when a peer gives none) and text.
 */
export function readErrorReply(
  message: Envelope,
  requestId: string,
): { reason: string; message: string } | undefined {
  if (message.id !== `${ERROR_REPLY_PREFIX}${requestId}`) return undefined;
  const payload = message.payload as Partial<Record<string, unknown>> | null;
  if (typeof payload !== "object" || payload === null || payload.status !== "error") return undefined;
  return {
    reason: typeof payload.reason === "string" && payload.reason !== "" ? payload.reason : "error",
    message: typeof payload.message === "string" ? payload.message : JSON.stringify(payload.message ?? null),
  };
}

/** The request id an error reply's id names, or undefined when `id` is not an error reply's. */
export function requestIdOfErrorReply(id: string): string | undefined {
  return id.startsWith(ERROR_REPLY_PREFIX) && id.length > ERROR_REPLY_PREFIX.length
    ? id.slice(ERROR_REPLY_PREFIX.length)
    : undefined;
}
