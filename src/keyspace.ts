/**
 * Every Redis key and channel name redactor touches is built here, so that the layout is one
 * decision in one place. The default layout is the peers' (docs/PROTOCOL.md) byte for byte. The
 * `hashTag` layout is the cluster layout: it wraps the app id in braces so that everything that
 * belongs to one app (its queues, its presence, the `message:{app}:<id>` hashes of the messages
 * sent to it, its sharded wake-up and reply channels) shares one Redis Cluster slot, and a script
 * call that serves one app touches one slot.
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

/**
 * The kinds of key that belong to one app, each built by the Keyspace method of the same name
 * from the app id alone: `redactor forget` deletes all of them and `redactor gc` judges them
 * (src/hygiene.ts). A new per-app key goes here, or into NOT_APP_KEYS with the reason;
 * test/gc.test.ts fails while a builder is in neither.
 */
export const APP_KEY_KINDS = [
  "inbox",
  "outbox",
  "processing",
  "dead",
  "scheduled",
  "status",
  "activation",
  "state",
  "timerSpecs",
  "timerDue",
  "timerLast",
] as const;

/** One kind of per-app key (APP_KEY_KINDS). */
export type AppKeyKind = (typeof APP_KEY_KINDS)[number];

/**
 * The builders that take an app id (or a name in its place) but whose names are not among the
 * app's own keys, and why. Everything an app has is APP_KEY_KINDS, its `message:{app}:*`
 * hashes (`appMessagePattern`) and its entry in `scheduledIndex`.
 */
export const NOT_APP_KEYS: Readonly<Record<string, string>> = {
  channel: "a pub/sub channel, not a key",
  wakeChannel: "a pub/sub channel, not a key",
  replyChannel: "a pub/sub channel, not a key",
  heartbeat: "named by a process's node id, not by an app; it expires on its own",
  familyMembers: "named by an actor family, shared by the processes of its pool",
  familyActive: "named by an actor family and a process",
  familyInboxPattern: "a SCAN pattern",
  messagePrefix: "a prefix; the hashes are found with appMessagePattern",
  message: "one message's hash; an app's are found with appMessagePattern",
  messagePattern: "a SCAN pattern for one message id",
  appMessagePattern: "a SCAN pattern; forget deletes what it finds",
};

/** Options that shape the key layout. */
export interface KeyspaceOptions {
  /**
   * The cluster layout: wrap the app id in `{…}` so one app's keys share a cluster slot
   * (docs/PROTOCOL.md, "Cluster layout"). Peers that use the plain layout will not see such
   * keys, so only turn this on when every program agrees. Needs Redis 7 (sharded pub/sub).
   * Cluster mode (`createSystem({ cluster })`) always uses it.
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

  /**
   * `queue:<app>:scheduled`: the app's scheduled messages, member = message id, score = due
   * time (whole ms, Redis' clock); the message itself waits in its `message:<id>` hash
   * (src/scheduler.ts). Not one of the four QueueKinds: no inbox-like listing reads it.
   */
  scheduled(app: string): string {
    return `queue:${this.app(app)}:scheduled`;
  }

  /** The SCAN pattern that finds every app's `scheduled` set. */
  scheduledPattern(): string {
    return "queue:*:scheduled";
  }

  /** The app id of a key built by `scheduled`, or null when `key` is not one. */
  appFromScheduledKey(key: string): string | null {
    if (!key.startsWith("queue:") || !key.endsWith(":scheduled")) return null;
    const app = key.slice("queue:".length, -":scheduled".length);
    if (!this.hashTag) return app === "" ? null : app;
    return app.length > 2 && app.startsWith("{") && app.endsWith("}") ? app.slice(1, -1) : null;
  }

  /**
   * `redactor:scheduled`: the index of apps that have scheduled messages, member = app id,
   * score = a time (ms) at or before the app's earliest due message, or a promoter's claim
   * (src/scheduler.ts). One key for all apps, in a slot of its own on a cluster.
   */
  scheduledIndex(): string {
    return "redactor:scheduled";
  }

  /**
   * `redactor:scheduled:due`: a PUBLISH channel carrying the due time (ms) of each new scheduled
   * message, so that every process re-arms its scheduler timer at once.
   */
  scheduledChannel(): string {
    return "redactor:scheduled:due";
  }

  /**
   * `activation:<app>` (cluster layout `activation:{app}`): the node id of the one process that
   * may run the app's actor when it has a single activation (src/lua/activate.lua).
   */
  activation(app: string): string {
    return `activation:${this.app(app)}`;
  }

  /**
   * `state:<app>` (cluster layout `state:{app}`): the persisted state of an actor defined with
   * `persist` (a hash: `v`, `data`, `seq`, `msg`, `at`; src/state.ts), written by finish.lua with
   * the completion of each message. No TTL: it is the actor's durable state.
   */
  state(app: string): string {
    return `state:${this.app(app)}`;
  }

  /**
   * `family:<family>:members` (cluster layout `family:{family}:members`): the processes of an
   * actor family's pool, field = node id, value = its heartbeat key.
   */
  familyMembers(family: string): string {
    return `family:${this.app(family)}:members`;
  }

  /**
   * `family:<family>:active:<node>`: the instances of the family that process `node` has
   * active, so that when it dies the others find them without a SCAN.
   */
  familyActive(family: string, node: string): string {
    return `family:${this.app(family)}:active:${node}`;
  }

  /**
   * The SCAN pattern of the inboxes of a family's instances (`<family>:<key>`): `queue:<family>:*:inbox`,
   * or `queue:{<family>:*}:inbox`; glob characters of the name escaped.
   */
  familyInboxPattern(family: string): string {
    const name = family.replace(/[*?[\]\\]/g, (c) => `\\${c}`);
    return this.hashTag ? `queue:{${name}:*}:inbox` : `queue:${name}:*:inbox`;
  }

  /**
   * `timers:<app>:specs` (cluster layout `timers:{app}:specs`): the durable timers of the actor
   * `app`, a hash of timer key → spec JSON (src/timers.ts). Its own suffix, distinct from
   * `timerDue`'s, keeps both builders injective even though app ids may hold colons.
   */
  timerSpecs(app: string): string {
    return `timers:${this.app(app)}:specs`;
  }

  /**
   * `timers:<app>:due` (cluster layout `timers:{app}:due`): when each durable timer of `app` is
   * next due, a sorted set of timer key scored by the due time (ms). An actor reads only its
   * head, so idle timers cost nothing (src/timers.ts).
   */
  timerDue(app: string): string {
    return `timers:${this.app(app)}:due`;
  }

  /**
   * `timers:<app>:last` (cluster layout `timers:{app}:last`): the id of the last tick each
   * durable timer of `app` sent, a hash of timer key → message id. Under `missed: "skip"` or
   * `"once"` a timer sends no new tick while that one still waits in the inbox (src/timers.ts).
   */
  timerLast(app: string): string {
    return `timers:${this.app(app)}:last`;
  }

  /** `status:<app>`: presence hash. */
  status(app: string): string {
    return `status:${this.app(app)}`;
  }

  /** The SCAN pattern that finds every presence hash. */
  statusPattern(): string {
    return "status:*";
  }

  /** Every key of one app (APP_KEY_KINDS), in that order, whether it exists or not. */
  appKeys(app: string): { kind: AppKeyKind; key: string }[] {
    return APP_KEY_KINDS.map((kind) => ({ kind, key: this[kind](app) }));
  }

  /**
   * The SCAN pattern of the `message:{app}:<id>` hashes of the messages sent to `app` in the
   * cluster layout (glob characters of the id escaped), or null in the peers' layout, where a
   * message hash (`message:<id>`) does not carry its recipient in its name.
   */
  appMessagePattern(app: string): string | null {
    if (!this.hashTag) return null;
    return `message:{${app.replace(/[*?[\]\\]/g, (c) => `\\${c}`)}}:*`;
  }

  /** The app id back from a presence key found by SCAN. */
  appFromStatusKey(key: string): string {
    const app = key.slice("status:".length);
    return this.hashTag && app.startsWith("{") && app.endsWith("}") ? app.slice(1, -1) : app;
  }

  /**
   * Prefix of the `message:<id>` hashes of messages sent to `app`: `message:` in the peers'
   * layout, `message:{app}:` in the cluster layout (the hash lives in its recipient's slot).
   * Scripts build a hash key from a message id they only learn inside Redis, so they receive
   * this prefix rather than the key.
   */
  messagePrefix(app: string): string {
    return this.hashTag ? `message:{${app}}:` : "message:";
  }

  /** The status hash of message `id` sent to `app`: `message:<id>`, or `message:{app}:<id>`. */
  message(app: string, id: string): string {
    return `${this.messagePrefix(app)}${id}`;
  }

  /**
   * The SCAN pattern that finds the hash of message `id` whatever its recipient (cluster
   * layout: `message:{*}:<id>`, glob characters of the id escaped); in the peers' layout the
   * key itself.
   */
  messagePattern(id: string): string {
    const escaped = id.replace(/[*?[\\\]]/g, (c) => `\\${c}`);
    return this.hashTag ? `message:{*}:${escaped}` : `message:${escaped}`;
  }

  /** The recipient app of a hash key found by `messagePattern` (cluster layout), or null. */
  appFromMessageKey(key: string, id: string): string | null {
    if (!this.hashTag) return null;
    const suffix = `}:${id}`;
    if (!key.startsWith("message:{") || !key.endsWith(suffix)) return null;
    return key.slice("message:{".length, -suffix.length);
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
   * Whether redactor's own channels (wake-ups between redactor processes, pushed replies) are
   * sharded channels (SSUBSCRIBE / SPUBLISH, Redis 7) in the app's slot: in the cluster layout.
   * A sharded message stays on the shard that owns the slot instead of crossing every node of a
   * cluster.
   */
  get sharded(): boolean {
    return this.hashTag;
  }

  /**
   * `redactor:wake:{app}`, the sharded wake-up channel of a redactor app in the cluster layout
   * (null in the peers' layout, where `channel:<app>` is the only one). A redactor sender wakes
   * a redactor recipient there; a peer's PUBLISH on `channel:<app>` still wakes it too.
   */
  wakeChannel(app: string): string | null {
    return this.hashTag ? `redactor:wake:{${app}}` : null;
  }

  /**
   * `redactor:replies:<app>` (cluster layout: `redactor:replies:{app}`, sharded): replies to the
   * asks of a redactor system, pushed whole so the ask resolves at once; the copy in the inbox is
   * the reliable path. It is outside the peers' `channel:` namespace, so no app id can make it
   * another app's wake-up channel.
   */
  replyChannel(app: string): string {
    return this.hashTag ? `redactor:replies:{${app}}` : `redactor:replies:${app}`;
  }

  /** `channel:broadcast`: system-wide notifications. */
  broadcastChannel(): string {
    return "channel:broadcast";
  }
}
