/**
 * `redactor tail [<app>…]`: a live stream of messages as they are sent and as their status
 * changes. Sends are seen on pub/sub (every send publishes `new_message:<id>` on
 * `channel:<recipient>`); status changes are seen through keyspace notifications when the
 * server has them on, else by polling the hashes of the messages seen being sent.
 *
 * In the cluster layout (`--cluster`, `--hash-tag`) a redactor sender wakes a redactor recipient
 * on its sharded channel `redactor:wake:{app}` instead, which cannot be pattern-subscribed: tail
 * SSUBSCRIBEs the wake channels of the apps it follows (of every app found by SCAN, rescanned
 * every few seconds, when it follows them all), and reads the outboxes of the apps it follows
 * for what they send to the others. On a cluster keyspace notifications are node-local, so
 * status changes are always polled there.
 */
import { isCluster, type RedisClient, scanAll } from "../../cluster.js";
import { decodeEnvelope } from "../../envelope.js";
import type { Keyspace } from "../../keyspace.js";
import { type CommandContext, type CommandSpec, listOption, stringOption } from "../command.js";
import { closeRedis, connect, describeTarget } from "../connect.js";
import { ExitCode, UsageError } from "../errors.js";
import { clockTime, parseCount, parseDuration, preview, priorityName, shortDuration } from "../format.js";
import { type MessageSummary, scanQueueApps, summarize } from "../queues.js";

/** One line of the stream; `--json` prints these as NDJSON. */
export type TailEvent =
  | {
      event: "sent";
      /** When tail saw it, ms. */
      at: number;
      id: string;
      sender: string | null;
      recipient: string;
      type: string | null;
      /** Null when the message could not be read back (a peer's send without an outbox copy). */
      priority: number | null;
      timestamp: number | null;
      replyTo: string | null;
      payload?: unknown;
    }
  | {
      event: "status";
      at: number;
      id: string;
      status: string;
      sender: string | null;
      recipient: string | null;
      type: string | null;
      error: string | null;
      /** From the send to `finished_at`, ms, once finished. */
      latencyMs: number | null;
    }
  | {
      event: "broadcast";
      at: number;
      id: string;
      sender: string;
      type: string;
      priority: number;
      payload?: unknown;
    };

interface Watch {
  status: string;
  sender: string | null;
  recipient: string | null;
  type: string | null;
  timestamp: number | null;
  since: number;
}

/** How many messages are watched for status changes at most; older ones are forgotten first. */
const MAX_WATCHED = 5000;
/** A message still not finished after this long is no longer polled. */
const WATCH_FOR_MS = 3_600_000;
const FINAL = new Set(["completed", "failed", "timeout"]);
/** Peers PUBLISH before they HSET message:<id> (docs/PROTOCOL.md), so the hash may lag the notification. */
const HASH_RETRIES_MS = [10, 40, 150];

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * How often, in the cluster layout with no app named, tail looks for new apps whose sharded
 * wake-up channels it should subscribe to, ms.
 */
const DISCOVER_MS = 5000;

/**
 * True when the server sends keyspace events for hash commands. Never on a cluster: each node
 * notifies only its own keys, to its own subscribers.
 */
async function keyspaceEventsOn(redis: RedisClient): Promise<boolean> {
  if (isCluster(redis)) return false;
  try {
    const reply = (await redis.config("GET", "notify-keyspace-events")) as string[];
    const flags = reply[1] ?? "";
    return flags.includes("K") && (flags.includes("h") || flags.includes("A"));
  } catch {
    // CONFIG may be disabled or forbidden by ACL (managed Redis): poll instead.
    return false;
  }
}

function route(sender: string | null, recipient: string | null): string {
  return `${sender ?? "?"} → ${recipient ?? "?"}`;
}

/** The human line for one event. */
export function formatTailEvent(e: TailEvent, withPayload: boolean): string {
  const cells: string[] = [clockTime(e.at)];
  if (e.event === "sent") {
    cells.push("sent".padEnd(10), route(e.sender, e.recipient).padEnd(32), (e.type ?? "?").padEnd(18));
    cells.push((e.priority === null ? "-" : priorityName(e.priority)).padEnd(8), e.id);
    if (e.replyTo) cells.push(`reply to ${e.replyTo}`);
    if (withPayload && e.payload !== undefined) cells.push(preview(e.payload, 120));
  } else if (e.event === "status") {
    cells.push(e.status.padEnd(10), route(e.sender, e.recipient).padEnd(32), (e.type ?? "?").padEnd(18));
    cells.push("".padEnd(8), e.id);
    if (e.latencyMs !== null) cells.push(`+${shortDuration(e.latencyMs)}`);
    if (e.error) cells.push(e.error);
  } else {
    cells.push("broadcast".padEnd(10), `${e.sender} → *`.padEnd(32), e.type.padEnd(18));
    cells.push(priorityName(e.priority).padEnd(8), e.id);
    if (withPayload && e.payload !== undefined) cells.push(preview(e.payload, 120));
  }
  return cells.join("  ").trimEnd();
}

/** The fields of `message:<id>` that tail reads. */
interface HashView {
  status: string | null;
  sender: string | null;
  recipient: string | null;
  type: string | null;
  /** The send time as stored (text, so that it matches the outbox score exactly). */
  timestamp: string | null;
  error: string | null;
  finishedAt: string | null;
}

/**
 * The runtime sends the messages of one tick to one recipient in one script call, which publishes
 * only the last id (src/lua/send.lua). The others are found in the sender's outbox, sent to the
 * same recipient within this window before the announced one.
 */
const BATCH_WINDOW_S = 2;

/** Follows the keyspace and reports events until stopped. */
class Tail {
  /** Poll mode: messages seen being sent and not finished yet. */
  private readonly watched = new Map<string, Watch>();
  /** Notification mode: the last status reported per id. */
  private readonly lastStatus = new Map<string, string>();
  /** Ids already reported as sent. */
  private readonly reported = new Set<string>();
  private chain: Promise<void> = Promise.resolve();
  private polling = false;
  private warnedFull = false;
  private closed = false;
  /** Sends older than this (Unix seconds, with a second of slack) happened before tail started. */
  private readonly startedAt = Date.now() / 1000 - 1;
  /** Sharded layout, poll mode: the outbox score (send time, s) read up to, per followed app. */
  private readonly outboxRead = new Map<string, number>();

  constructor(
    private readonly cmd: RedisClient,
    private readonly keys: Keyspace,
    private readonly filter: Set<string> | null,
    private readonly withPayload: boolean,
    /** Everything arrives as keyspace notifications; otherwise sends come by pub/sub and `poll` runs on a timer. */
    readonly notifications: boolean,
    private readonly emit: (e: TailEvent) => void,
    private readonly note: (text: string) => void,
  ) {}

  private wanted(sender: string | null, recipient: string | null): boolean {
    if (!this.filter) return true;
    return (recipient !== null && this.filter.has(recipient)) || (sender !== null && this.filter.has(sender));
  }

  /** Runs `task` after every earlier one, so lines come out in the order events arrived. */
  enqueue(task: () => Promise<void>): void {
    if (this.closed) return;
    this.chain = this.chain
      .then(() => (this.closed ? undefined : task()))
      .catch((err: unknown) => {
        if (!this.closed) this.note(`tail: ${(err as Error).message}`);
      });
  }

  /** Stops taking work; resolves when the task in hand is done (or after a short wait). */
  async close(): Promise<void> {
    this.closed = true;
    await Promise.race([this.chain, sleep(500)]);
  }

  /** Reads the hash of message `id` sent to `recipient` (whose slot holds it in the cluster layout). */
  private async readHash(recipient: string, id: string): Promise<HashView> {
    const [status, sender, hashRecipient, type, timestamp, error, finishedAt] = await this.cmd.hmget(
      this.keys.message(recipient, id),
      "status",
      "sender",
      "recipient",
      "type",
      "timestamp",
      "error",
      "finished_at",
    );
    return {
      status: status ?? null,
      sender: sender ?? null,
      recipient: hashRecipient ?? null,
      type: type ?? null,
      timestamp: timestamp ?? null,
      error: error ?? null,
      finishedAt: finishedAt ?? null,
    };
  }

  /** Bounded memory of ids: the oldest entries go first. */
  private bounded<T>(store: Map<string, T> | Set<string>, id: string): void {
    if (store.size <= MAX_WATCHED) return;
    const oldest = store.keys().next().value;
    if (oldest !== undefined && oldest !== id) store.delete(oldest);
  }

  private reportSent(
    id: string,
    hash: HashView,
    message: MessageSummary | null,
    recipient: string | null,
  ): void {
    this.reported.add(id);
    this.bounded(this.reported, id);
    this.emit({
      event: "sent",
      at: Date.now(),
      id,
      sender: hash.sender ?? message?.sender ?? null,
      recipient: recipient ?? message?.recipient ?? "?",
      type: hash.type ?? message?.type ?? null,
      priority: typeof message?.priority === "number" ? message.priority : null,
      timestamp: hash.timestamp === null ? (message?.timestamp ?? null) : Number(hash.timestamp),
      replyTo: message?.replyTo ?? null,
      ...(this.withPayload && message ? { payload: message.payload } : {}),
    });
  }

  /**
   * Poll mode: `new_message:<id>` arrived on the wake-up channel of `channelApp` (`channel:<app>`,
   * or `redactor:wake:{app}` in the cluster layout).
   */
  async onNewMessage(channelApp: string, id: string): Promise<void> {
    let hash = await this.readHash(channelApp, id);
    for (const wait of HASH_RETRIES_MS) {
      if (hash.sender !== null) break;
      await sleep(wait);
      hash = await this.readHash(channelApp, id);
    }
    const recipient = hash.recipient ?? channelApp;
    if (!this.wanted(hash.sender, recipient)) return;
    const batch = await this.batchOf(id, hash.sender, recipient, hash.timestamp);
    for (const sibling of batch) {
      if (this.reported.has(sibling.id as string) || sibling.id === id) continue;
      const siblingId = sibling.id as string;
      const view: HashView = {
        ...hash,
        type: sibling.type,
        timestamp: sibling.timestamp === null ? null : String(sibling.timestamp),
      };
      this.reportSent(siblingId, view, sibling, recipient);
      this.watch(siblingId, view, recipient);
    }
    if (this.reported.has(id)) return;
    this.reportSent(id, hash, batch.find((m) => m.id === id) ?? null, recipient);
    this.watch(id, hash, recipient);
  }

  /**
   * The announced message and the others of its batch, from the sender's outbox (which is
   * scored by timestamp), oldest first; empty when the sender keeps no outbox.
   */
  private async batchOf(
    id: string,
    sender: string | null,
    recipient: string,
    timestamp: string | null,
  ): Promise<MessageSummary[]> {
    if (sender === null || timestamp === null) return [];
    const to = Number(timestamp);
    const members = await this.cmd.zrangebyscore(
      this.keys.outbox(sender),
      String(Math.max(this.startedAt, to - BATCH_WINDOW_S)),
      timestamp,
    );
    return members.map(summarize).filter((m) => m.id !== null && (m.id === id || m.recipient === recipient));
  }

  /** The message itself from the sender's outbox, for its priority and payload. */
  private async readBack(id: string, hash: HashView): Promise<MessageSummary | null> {
    if (hash.sender === null || hash.timestamp === null) return null;
    const members = await this.cmd.zrangebyscore(
      this.keys.outbox(hash.sender),
      hash.timestamp,
      hash.timestamp,
    );
    return members.map(summarize).find((m) => m.id === id) ?? null;
  }

  onBroadcast(text: string): void {
    try {
      const env = decodeEnvelope(text);
      if (this.filter && !this.filter.has(env.sender)) return;
      this.emit({
        event: "broadcast",
        at: Date.now(),
        id: env.id,
        sender: env.sender,
        type: env.message_type,
        priority: env.priority,
        ...(this.withPayload ? { payload: env.payload } : {}),
      });
    } catch {
      // Not a message: some other program's use of the channel.
    }
  }

  private watch(id: string, hash: HashView, recipient: string): void {
    this.watched.delete(id);
    this.watched.set(id, {
      status: "pending",
      sender: hash.sender,
      recipient,
      type: hash.type,
      timestamp: hash.timestamp === null ? null : Number(hash.timestamp),
      since: Date.now(),
    });
    if (this.watched.size > MAX_WATCHED) {
      this.bounded(this.watched, id);
      if (!this.warnedFull) {
        this.note(`tail: more than ${MAX_WATCHED} unfinished messages; the oldest are no longer followed`);
        this.warnedFull = true;
      }
    }
  }

  private statusEvent(
    id: string,
    status: string,
    fields: {
      sender: string | null;
      recipient: string | null;
      type: string | null;
      timestamp: number | null;
    },
    error: string | null,
    finishedAt: string | null,
  ): TailEvent {
    const finished = finishedAt === null ? null : Number(finishedAt);
    return {
      event: "status",
      at: Date.now(),
      id,
      status,
      ...fields,
      error: FINAL.has(status) && status !== "completed" ? error : null,
      latencyMs:
        FINAL.has(status) && finished !== null && fields.timestamp !== null
          ? finished - fields.timestamp * 1000
          : null,
    };
  }

  /**
   * Sharded layout, poll mode: what the followed apps sent since the last look, from their
   * outboxes (scored by send time). A send to an app tail does not follow wakes it on that app's
   * sharded channel only, which tail is not subscribed to; the sender's outbox copy shows it.
   * A sender that keeps no outbox (outboxCap 0, a peer) is seen only through its recipients.
   */
  async pollOutboxes(): Promise<void> {
    if (!this.filter || this.cmd.status !== "ready") return;
    await Promise.all(
      [...this.filter].map(async (app) => {
        const from = Math.max(this.startedAt, this.outboxRead.get(app) ?? 0);
        const flat = await this.cmd.zrangebyscore(this.keys.outbox(app), String(from), "+inf", "WITHSCORES");
        for (let i = 0; i + 1 < flat.length; i += 2) {
          const message = summarize(flat[i] as string);
          this.outboxRead.set(app, Math.max(this.outboxRead.get(app) ?? 0, Number(flat[i + 1])));
          const { id, recipient } = message;
          if (id === null || recipient === null || this.reported.has(id)) continue;
          const hash = await this.readHash(recipient, id);
          if (this.reported.has(id)) continue;
          this.reportSent(id, hash, message, recipient);
          this.watch(id, hash, recipient);
        }
      }),
    );
  }

  /**
   * Notification mode: the hash of message `id` sent to `recipient` was written. The status is
   * read now, so it may be later than the write that was notified; repeated statuses are
   * reported once. The first write of a message sent since tail started is its send (this sees
   * every message of a batch, and a peer's send even before its PUBLISH); a message first seen
   * later is reported by status only.
   */
  async onHashChanged(recipient: string, id: string): Promise<void> {
    const hash = await this.readHash(recipient, id);
    if (hash.status === null || !this.wanted(hash.sender, hash.recipient)) return;
    const ts = hash.timestamp === null ? null : Number(hash.timestamp);
    if (!this.lastStatus.has(id) && ts !== null && ts >= this.startedAt) {
      this.reportSent(id, hash, await this.readBack(id, hash), hash.recipient);
      this.remember(id, "pending");
    }
    if (this.lastStatus.get(id) === hash.status) return;
    this.remember(id, hash.status);
    this.emit(
      this.statusEvent(
        id,
        hash.status,
        { sender: hash.sender, recipient: hash.recipient, type: hash.type, timestamp: ts },
        hash.error,
        hash.finishedAt,
      ),
    );
  }

  /** Notes the last status reported for `id`. */
  private remember(id: string, status: string): void {
    this.lastStatus.delete(id);
    this.lastStatus.set(id, status);
    this.bounded(this.lastStatus, id);
  }

  /**
   * Poll mode: one round of HMGETs over the messages seen being sent, sent together (not as a
   * pipeline: on a cluster the hashes live on every master).
   */
  async poll(): Promise<void> {
    if (this.polling || this.watched.size === 0 || this.cmd.status !== "ready") return;
    this.polling = true;
    try {
      const now = Date.now();
      const watched = [...this.watched];
      const results = await Promise.all(
        watched.map(([id, w]) =>
          this.cmd.hmget(this.keys.message(w.recipient ?? "", id), "status", "error", "finished_at"),
        ),
      );
      watched.forEach(([id], i) => {
        const w = this.watched.get(id);
        if (!w) return;
        const [status, error, finishedAt] = results[i] ?? [];
        if (!status || now - w.since > WATCH_FOR_MS) {
          this.watched.delete(id); // expired, deleted, or never finishing: stop asking
          return;
        }
        if (status === w.status) return;
        w.status = status;
        this.emit(this.statusEvent(id, status, w, error ?? null, finishedAt ?? null));
        if (FINAL.has(status)) this.watched.delete(id);
      });
    } finally {
      this.polling = false;
    }
  }
}

/** How `followMessages` follows the keyspace. */
export interface FollowOptions {
  /** A command connection (one server or a cluster), kept open by the caller. */
  cmd: RedisClient;
  /** A connection for subscriptions only (sharded ones in the cluster layout), kept by the caller. */
  sub: RedisClient;
  keys: Keyspace;
  /** Only messages to or from these apps; empty = every app. */
  apps: readonly string[];
  /** Put each message's payload in its `sent` and `broadcast` events. */
  withPayload: boolean;
  /** Poll for status changes even when keyspace notifications are on. */
  poll: boolean;
  /** How often status changes are polled, ms. */
  intervalMs: number;
  /**
   * Only events of messages of these types (`message_type`; a reply's type is its own, e.g.
   * `ping_reply`); events whose type is unknown are left out too. Empty or absent = every type.
   * @default [] (every type)
   */
  types?: readonly string[];
}

/** A running `followMessages`. */
export interface MessageFollower {
  /** Status changes come by keyspace notifications (else by polling). */
  readonly notifications: boolean;
  /** Redactor wake-ups are followed on the apps' sharded channels (cluster layout). */
  readonly sharded: boolean;
  /** Stops the timers and the event queue; the connections stay the caller's to close. */
  close(): Promise<void>;
}

/**
 * The source of `redactor tail` and of the dashboard's live tail: follows sends (pub/sub),
 * status changes (keyspace notifications, else polling) and broadcasts, and calls `emit` with
 * each event in the order they arrived; `note` gets warnings (connection lost, …).
 * @throws the Redis client's errors when the subscriptions cannot be made.
 */
export async function followMessages(
  options: FollowOptions,
  emit: (e: TailEvent) => void,
  note: (text: string) => void,
): Promise<MessageFollower> {
  const { cmd, sub, keys, apps } = options;
  const notifications = !options.poll && (await keyspaceEventsOn(cmd));
  const types = new Set(options.types ?? []);
  const tail = new Tail(
    cmd,
    keys,
    apps.length > 0 ? new Set(apps) : null,
    options.withPayload,
    notifications,
    types.size === 0 ? emit : (e) => e.type !== null && types.has(e.type) && emit(e),
    note,
  );
  const db = isCluster(cmd) ? 0 : (cmd.options.db ?? 0);
  const keyspacePrefix = `__keyspace@${db}__:`;
  const broadcast = keys.broadcastChannel();

  sub.on("pmessage", (_pattern: string, channel: string, text: string) => {
    if (channel === broadcast) tail.onBroadcast(text);
    else if (channel.startsWith(keyspacePrefix)) {
      const found = text === "hset" ? messageOfKey(keys, channel.slice(keyspacePrefix.length)) : null;
      if (found) tail.enqueue(() => tail.onHashChanged(found.recipient, found.id));
    } else if (!tail.notifications && text.startsWith("new_message:")) {
      // With notifications on, the hash writes already report every send.
      const app = keys.appFromChannel(channel);
      const id = text.slice("new_message:".length);
      if (app !== null) tail.enqueue(() => tail.onNewMessage(app, id));
    }
  });
  // Cluster layout: redactor-to-redactor wake-ups on the recipients' sharded channels.
  const wakeApps = new Map<string, string>();
  sub.on("smessage", (channel: string, text: string) => {
    const app = wakeApps.get(channel);
    if (app === undefined || !text.startsWith("new_message:")) return;
    const id = text.slice("new_message:".length);
    tail.enqueue(() => tail.onNewMessage(app, id));
  });
  const followWakeChannels = async (toFollow: Iterable<string>): Promise<void> => {
    const fresh: string[] = [];
    for (const app of toFollow) {
      const channel = keys.wakeChannel(app);
      if (channel === null || wakeApps.has(channel)) continue;
      wakeApps.set(channel, app);
      fresh.push(channel);
    }
    // One SSUBSCRIBE per channel: each is in its own app's slot.
    await Promise.all(fresh.map((channel) => sub.ssubscribe(channel)));
  };
  let lost = false;
  sub.on("reconnecting", () => {
    if (!lost) note("tail: connection to Redis lost; reconnecting …");
    lost = true;
  });
  sub.on("ready", () => {
    if (lost) note("tail: reconnected; messages sent while disconnected were not seen");
    lost = false;
  });

  const patterns = [`${keys.channel("")}*`];
  if (notifications) patterns.push(`${keyspacePrefix}${keys.message("*", "*")}`);
  await sub.psubscribe(...patterns);
  // Sharded wake-ups are seen only by subscribing to each app's channel: those of the apps
  // named, else of every app there is, looked for again every DISCOVER_MS.
  const sharded = keys.sharded && !notifications;
  let discovering = false;
  const discover = async () => {
    if (discovering || cmd.status !== "ready") return;
    discovering = true;
    try {
      await followWakeChannels(await knownApps(cmd, keys));
    } catch (err) {
      note(`tail: cannot look for new apps: ${(err as Error).message}`);
    } finally {
      discovering = false;
    }
  };
  let discoverTimer: NodeJS.Timeout | undefined;
  if (sharded && apps.length > 0) await followWakeChannels(apps);
  else if (sharded) {
    await discover();
    discoverTimer = setInterval(() => void discover(), DISCOVER_MS);
  }
  const timer = notifications
    ? undefined
    : setInterval(() => {
        if (sharded) tail.enqueue(() => tail.pollOutboxes());
        tail.enqueue(() => tail.poll());
      }, options.intervalMs);
  return {
    notifications,
    sharded,
    async close() {
      clearInterval(timer);
      clearInterval(discoverTimer);
      await tail.close();
    },
  };
}

/** The `tail` command. */
export const tailCommand: CommandSpec = {
  name: "tail",
  summary: "Stream messages as they are sent and as they finish, until Ctrl-C.",
  description:
    "Sends are seen through PSUBSCRIBE channel:* (each send publishes new_message:<id>), then read " +
    "from message:<id> and the sender's outbox. Status changes (processing, completed, failed, " +
    "timeout) come from keyspace notifications when the server has them on " +
    "(notify-keyspace-events containing K and h), otherwise from polling the messages seen being " +
    "sent. A peer's bare ZADD publishes nothing, so it is only seen once its status changes, and " +
    "only with notifications. In the cluster layout (--cluster, --hash-tag) redactor apps wake each " +
    "other on sharded channels (redactor:wake:{app}): tail subscribes to those of the apps named " +
    "(of every app found, looked for again every 5 s, when none is named) and reads the named apps' " +
    "outboxes for what they send to others. On a cluster status changes are always polled. Lines " +
    "are NDJSON with --json.",
  args: [
    {
      name: "app",
      optional: true,
      variadic: true,
      description: "only messages to or from these apps (default: every app)",
    },
  ],
  options: {
    poll: { type: "boolean", description: "poll for status changes even when keyspace notifications are on" },
    interval: {
      type: "string",
      value: "<duration>",
      description: "how often to poll for status changes (default 250ms)",
    },
    payload: { type: "boolean", description: "show each message's payload" },
    type: {
      type: "string",
      multiple: true,
      value: "<type>",
      description: "only messages of this type (a reply's type is its own, e.g. ping_reply)",
    },
    count: { type: "string", value: "<n>", description: "stop after n events (for scripts)" },
  },
  examples: [
    "redactor tail",
    "redactor tail HEAR_FC petal-app-manager --payload",
    "redactor tail HEAR_FC --type command --type command_response",
    "redactor tail --json --count 1",
  ],
  async run(ctx: CommandContext) {
    const apps = (ctx.args.app as string[] | undefined) ?? [];
    const intervalText = stringOption(ctx, "interval");
    const intervalMs = intervalText === undefined ? 250 : parseDuration(intervalText, "--interval");
    const countText = stringOption(ctx, "count");
    const maxEvents = countText === undefined ? Number.POSITIVE_INFINITY : parseCount(countText, "--count");
    const withPayload = ctx.options.payload === true;
    const types = listOption(ctx, "type");
    for (const type of types) {
      if (type === "") throw new UsageError("--type needs a message type, e.g. --type command");
    }

    const cmd = await connect(ctx.target, { reconnect: true });
    const sub = await connect(ctx.target, { reconnect: true, sharded: ctx.keys.sharded }).catch(
      async (err) => {
        await closeRedis(cmd);
        throw err;
      },
    );
    let stop!: () => void;
    const stopped = new Promise<void>((resolve) => {
      stop = resolve;
    });
    let emitted = 0;
    let follower: MessageFollower | undefined;
    try {
      follower = await followMessages(
        {
          cmd,
          sub,
          keys: ctx.keys,
          apps,
          withPayload,
          poll: ctx.options.poll === true,
          intervalMs,
          types,
        },
        (e) => {
          if (emitted >= maxEvents) return;
          emitted += 1;
          ctx.out(ctx.json ? JSON.stringify(e) : formatTailEvent(e, withPayload));
          if (emitted >= maxEvents) stop();
        },
        ctx.err,
      );
    } catch (err) {
      sub.disconnect();
      await closeRedis(cmd);
      throw err;
    }
    const onSignal = () => stop();
    process.on("SIGINT", onSignal);
    process.on("SIGTERM", onSignal);
    ctx.err(
      `tail: watching ${apps.length > 0 ? apps.join(", ") : "every app"}` +
        `${types.length > 0 ? ` (types ${types.join(", ")})` : ""} on ${describeTarget(ctx.target)} ` +
        `(status changes by ${follower.notifications ? "keyspace notifications" : `polling every ${intervalMs} ms`}` +
        `${follower.sharded ? "; redactor wake-ups on the apps' sharded channels" : ""}); Ctrl-C to stop`,
    );
    try {
      await stopped;
    } finally {
      await follower.close();
      process.off("SIGINT", onSignal);
      process.off("SIGTERM", onSignal);
      sub.disconnect();
      await closeRedis(cmd);
    }
    return ExitCode.OK;
  },
};

/**
 * The recipient and id of a message hash key (`message:<id>`, or `message:{app}:<id>` in the
 * cluster layout), or null when `key` is not one. The peers' layout does not name the recipient:
 * it is then "" (any app: the key is the same).
 */
export function messageOfKey(keys: Keyspace, key: string): { recipient: string; id: string } | null {
  if (!keys.hashTag) {
    const prefix = keys.messagePrefix("");
    return key.startsWith(prefix) && key.length > prefix.length
      ? { recipient: "", id: key.slice(prefix.length) }
      : null;
  }
  // An app id has no braces in this layout, so the first "}:" ends it.
  const open = "message:{";
  const close = key.indexOf("}:", open.length);
  if (!key.startsWith(open) || close < 0) return null;
  const recipient = key.slice(open.length, close);
  const id = key.slice(close + 2);
  return id !== "" && keys.message(recipient, id) === key ? { recipient, id } : null;
}

/** Every app with a presence hash or an inbox, leases or dead letters (SCAN of every master). */
async function knownApps(redis: RedisClient, keys: Keyspace): Promise<Set<string>> {
  const [statusKeys, queueApps] = await Promise.all([
    scanAll(redis, keys.statusPattern()),
    scanQueueApps(redis, keys),
  ]);
  for (const key of statusKeys) queueApps.add(keys.appFromStatusKey(key));
  return queueApps;
}
