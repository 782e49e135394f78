/**
 * Every Redis key and channel name redactor touches is built here, so that the layout is one
 * decision in one place. The default layout is the peers' (docs/PROTOCOL.md) byte for byte; the
 * `hashTag` layout wraps the app id in braces so that all of one app's keys share a Redis
 * Cluster slot.
 *
 * No two purposes share a name: every builder is injective over valid ids (src/ids.ts), and two
 * builders never produce the same name. The peers' names keep their fixed prefixes and suffixes;
 * `channel:broadcast` is kept apart from `channel:<app>` by reserving the id `broadcast`; and
 * redactor's own channels live under `redactor:`, outside the peers' `channel:<app>` namespace.
 */
import { checkId, type IdRules } from "./ids.js";

/** The four sorted sets of an app. */
export type QueueKind = "inbox" | "outbox" | "processing" | "dead";

const QUEUE_KINDS: readonly QueueKind[] = ["inbox", "outbox", "processing", "dead"];

/** Options that shape the key layout. */
export interface KeyspaceOptions {
  /**
   * Wrap the app id in `{…}` so one app's keys share a cluster slot. Peers that use the plain
   * layout will not see such keys, so only turn this on when every program agrees.
   * @default false
   */
  hashTag?: boolean;
}

/** The names of every key and channel, for one layout. */
export class Keyspace {
  readonly hashTag: boolean;

  constructor(options: KeyspaceOptions = {}) {
    this.hashTag = options.hashTag ?? false;
  }

  private app(app: string): string {
    return this.hashTag ? `{${app}}` : app;
  }

  /** The rules an app id must follow in this layout (src/ids.ts). */
  get idRules(): IdRules {
    return { hashTag: this.hashTag };
  }

  /**
   * Throws InvalidIdError unless `id` can be an app id in this layout: non-empty, at most
   * MAX_ID_BYTES bytes, no control characters, no braces when hash-tagged, not `broadcast`.
   * @param what names the id in the error, e.g. `actor id`.
   */
  checkApp(id: unknown, what = "app id"): asserts id is string {
    checkId(id, what, this.idRules);
  }

  /** `queue:<app>:inbox`: the mailbox, a sorted set of message JSON. */
  inbox(app: string): string {
    return `queue:${this.app(app)}:inbox`;
  }

  /** The app id of an inbox key, or null when `key` is not one. */
  appFromInbox(key: string): string | null {
    if (!key.startsWith("queue:") || !key.endsWith(":inbox")) return null;
    const app = key.slice("queue:".length, -":inbox".length);
    return this.hashTag && app.startsWith("{") && app.endsWith("}") ? app.slice(1, -1) : app;
  }

  /** The SCAN pattern that finds every inbox, outbox, processing and dead-letter set. */
  queuePattern(): string {
    return "queue:*";
  }

  /**
   * The app id and kind of a key built by `inbox`, `outbox`, `processing` or `dead`, or null
   * when `key` is none of them (in the hash-tagged layout, a key without the braces).
   */
  appFromQueueKey(key: string): { app: string; queue: QueueKind } | null {
    if (!key.startsWith("queue:")) return null;
    for (const queue of QUEUE_KINDS) {
      const suffix = `:${queue}`;
      if (!key.endsWith(suffix)) continue;
      let app = key.slice("queue:".length, -suffix.length);
      if (this.hashTag) {
        if (!(app.length >= 2 && app.startsWith("{") && app.endsWith("}"))) return null;
        app = app.slice(1, -1);
      }
      return app ? { app, queue } : null;
    }
    return null;
  }

  /** `queue:<app>:outbox`: capped copies of what the app sent, for monitoring. */
  outbox(app: string): string {
    return `queue:${this.app(app)}:outbox`;
  }

  /** `queue:<app>:processing`: claimed messages scored by their lease deadline (ms). */
  processing(app: string): string {
    return `queue:${this.app(app)}:processing`;
  }

  /** `queue:<app>:dead`: dead letters scored by the time they died (ms). */
  dead(app: string): string {
    return `queue:${this.app(app)}:dead`;
  }

  /** `status:<app>`: presence hash. */
  status(app: string): string {
    return `status:${this.app(app)}`;
  }

  /** The SCAN pattern that finds every presence hash. */
  statusPattern(): string {
    return "status:*";
  }

  /** The app id back from a presence key found by SCAN. */
  appFromStatusKey(key: string): string {
    const app = key.slice("status:".length);
    return this.hashTag && app.startsWith("{") && app.endsWith("}") ? app.slice(1, -1) : app;
  }

  /**
   * Prefix of `message:<id>` hashes. Scripts build the hash key from a message id they only
   * learn inside Redis, so they receive this prefix rather than the key.
   */
  messagePrefix(): string {
    return "message:";
  }

  /** `message:<id>`: the status hash of one message. */
  message(id: string): string {
    return `${this.messagePrefix()}${id}`;
  }

  /** `heartbeat:<node>`: a key that lives while the process `node` is alive. */
  heartbeat(node: string): string {
    return `heartbeat:${node}`;
  }

  /** `channel:<app>`: the wake-up channel of one app. */
  channel(app: string): string {
    return `channel:${app}`;
  }

  /**
   * The app id of a channel built by `channel`, or null when `channel` is not one (the
   * broadcast channel, redactor's own channels, keyspace notifications).
   */
  appFromChannel(channel: string): string | null {
    if (!channel.startsWith("channel:") || channel === this.broadcastChannel()) return null;
    const app = channel.slice("channel:".length);
    return app === "" ? null : app;
  }

  /**
   * `redactor:replies:<app>`: replies to the asks of a redactor system, pushed whole so the ask
   * resolves at once; the copy in the inbox is the reliable path. It is outside the peers'
   * `channel:` namespace, so no app id can make it another app's wake-up channel.
   */
  replyChannel(app: string): string {
    return `redactor:replies:${app}`;
  }

  /** `channel:broadcast`: system-wide notifications. */
  broadcastChannel(): string {
    return "channel:broadcast";
  }
}
