/**
 * Logger: records every message it receives, whatever its type, and answers `log_query` with
 * what it recorded. Point another actor's output at it (for example HEAR_FC's `controllerId`)
 * to see exactly what that actor sends, in tests or while debugging a peer.
 *
 * Only `log_query` has a handler of its own; every other type goes to the definition's
 * `fallback`, the recorder.
 */
import { type ActorDefinition, defineActor, type Envelope, type Handler, type Priority } from "redactor";
import { z } from "zod";

/** One recorded message. */
export interface LogEntry {
  id: string;
  type: string;
  sender: string;
  recipient: string;
  priority: Priority;
  payload: unknown;
  /** For a reply: the id of the request it answers. */
  reply_to: string | null;
  /** When it was sent, Unix seconds (the envelope's timestamp). */
  timestamp: number;
  /** When it was recorded, Unix seconds. */
  received_at: number;
  /** Position in the log, from 1, counting entries already evicted. */
  seq: number;
}

/** A query of the log; every field narrows it. */
export interface LogQuery {
  /**
   * Only this message type.
   * @default undefined (every type)
   */
  type?: string;
  /**
   * Only from this sender.
   * @default undefined (every sender)
   */
  sender?: string;
  /**
   * Only entries with a greater `seq` (to poll for what is new).
   * @default undefined (from the oldest kept)
   */
  after_seq?: number;
  /**
   * At most this many, the latest.
   * @default undefined (all that match)
   */
  limit?: number;
}

/** The reply to `log_query`. */
export interface LogQueryResult {
  entries: LogEntry[];
  /** Messages recorded since start, evicted ones included. */
  total: number;
}

/** What the logger handles besides recording everything: its query. */
export type LoggerProtocol = {
  /** Not recorded itself, so that reading the log does not change it. */
  log_query: { payload: LogQuery; reply: LogQueryResult };
};

/** Options of `logger`. */
export interface LoggerOptions {
  /**
   * The app id.
   * @default "logger"
   */
  id?: string;
  /**
   * How many entries are kept; the oldest go first.
   * @default 1000
   */
  capacity?: number;
  /**
   * Also write each message to the actor's log at info level.
   * @default false
   */
  print?: boolean;
}

/** A logger: the actor to spawn, and a local view of what it recorded. */
export interface LoggerHandle {
  readonly definition: ActorDefinition<LoggerProtocol, undefined>;
  readonly id: string;
  /** The recorded entries matching `query`, oldest first. */
  entries(query?: LogQuery): LogEntry[];
  /** Messages recorded since start, evicted ones included. */
  readonly total: number;
  /** Forgets every entry (`total` keeps counting). */
  clear(): void;
}

const LogQuerySchema = z.object({
  type: z.string().optional(),
  sender: z.string().optional(),
  after_seq: z.number().int().min(0).optional(),
  limit: z.number().int().positive().optional(),
});

/** Creates a logger actor. */
export function logger(options: LoggerOptions = {}): LoggerHandle {
  const id = options.id ?? "logger";
  const capacity = options.capacity ?? 1000;
  // Kept by the handle rather than per incarnation: the record should survive a restart.
  let log: LogEntry[] = [];
  let total = 0;

  function select(query: LogQuery = {}): LogEntry[] {
    let found = log.filter(
      (e) =>
        (query.type === undefined || e.type === query.type) &&
        (query.sender === undefined || e.sender === query.sender) &&
        (query.after_seq === undefined || e.seq > query.after_seq),
    );
    if (query.limit !== undefined && found.length > query.limit) found = found.slice(-query.limit);
    return found.map((e) => structuredClone(e));
  }

  const record = (message: Envelope, print: (entry: LogEntry) => void): void => {
    total += 1;
    const entry: LogEntry = {
      id: message.id,
      type: message.message_type,
      sender: message.sender,
      recipient: message.recipient,
      priority: message.priority,
      payload: message.payload,
      reply_to: message.reply_to,
      timestamp: message.timestamp,
      received_at: Date.now() / 1000,
      seq: total,
    };
    log.push(entry);
    if (log.length > capacity) log.splice(0, log.length - capacity);
    if (options.print) print(entry);
  };

  const query: Handler<LoggerProtocol, "log_query", undefined> = (q) => ({ entries: select(q), total });
  return {
    definition: defineActor<LoggerProtocol, undefined>({
      id,
      schemas: { log_query: LogQuerySchema },
      handlers: { log_query: query },
      // Every other type is recorded; no reply: an ask of any type but log_query times out.
      fallback: (_payload, ctx) => {
        record(ctx.message, (entry) =>
          ctx.log.info({ msgId: entry.id, type: entry.type, sender: entry.sender }, "logged"),
        );
      },
    }),
    id,
    entries: select,
    get total() {
      return total;
    },
    clear() {
      log = [];
    },
  };
}

/**
 * A logger's actor with its defaults (app id `logger`), so that the file runs as it is:
 * `npx redactor run actors/logger.ts`; ask it `log_query` for what it recorded.
 */
export default logger().definition;
