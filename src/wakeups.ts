/**
 * Wake-ups. One subscriber connection per system carries the `channel:<app>` of every local
 * actor plus `channel:broadcast`. Pub/sub is only a hint, so two more paths guarantee that a
 * message is noticed: after any reconnect every local inbox is checked at once, and a sweep
 * finds inboxes that filled without a PUBLISH (a peer's bare ZADD). The sweep is one EXISTS
 * over the inboxes (and processing sets) of the actors that are idle, so an idle process sends
 * one command per interval whatever its number of actors; only when that counts something does
 * it ask which, by halves; busy actors' keys are asked one by one. Under load it costs what the
 * busy actors need, not what all actors need.
 * The same sweep returns to the inbox the messages of local actors whose lease expired or
 * whose holder died, so a crashed process's work comes back even when nothing new arrives.
 *
 * Where the server already publishes keyspace notifications for sorted sets
 * (`notify-keyspace-events` with K and z, or KA), each actor also listens to its inbox key's
 * `zadd` events: a bare ZADD then wakes it at once, and the sweep drops the inboxes and looks
 * at leases only every fifth period. redactor never changes the server's configuration. Where an
 * ACL refuses those channels, the refusal is reported once and the sweep looks at inboxes again.
 *
 * In the cluster layout a redactor sender wakes a redactor recipient on its sharded channel
 * `redactor:wake:{app}` (SSUBSCRIBE / SPUBLISH), which stays on the shard that owns the app's
 * slot; `channel:<app>` is still listened to, for the peers' PUBLISH. On a cluster ioredis keeps
 * one sharded subscriber connection per master and re-subscribes once it has read the new slot
 * map (read every second: src/connection.ts), and every local inbox is then looked at; keyspace
 * notifications are not used there (each node publishes only its own keys' events), so a bare
 * ZADD is found by the sweep.
 */
import type { HostClock, TimerHandle } from "./clock.js";
import { countExisting, existsEach, isCluster, type RedisClient } from "./cluster.js";
import type { Keyspace } from "./keyspace.js";
import type { Mailbox } from "./mailbox.js";

/** Actor channels are `channel:<app>` (Keyspace.channel). */
const CHANNEL_PREFIX = "channel:";

/**
 * The `status:<app>` field that tells redactor senders to wake the app on its sharded channel
 * (cluster layout), written when the app subscribes to it; without it they PUBLISH on
 * `channel:<app>`, which every redactor actor also listens to (src/lua/includes/enqueue.lua).
 */
export const WAKE_FIELD = "wake";
/** The value of WAKE_FIELD for an app woken on its sharded channel. */
export const WAKE_SHARDED = "sharded";

/**
 * The text published on an actor's wake-up path (`channel:<app>`, or its sharded channel) when
 * one of its durable timers was started, replaced or cancelled (timer-start.lua,
 * timer-cancel.lua): every incarnation of the actor re-reads the head of its due timers and
 * re-arms (src/timers.ts), none claims. Any other text is a wake-up (`new_message:<id>`).
 */
export const TIMERS_CHANGED = "timers_changed";

/** Redis refused a command for lack of permission (an ACL). */
function isRefusal(err: Error): boolean {
  return err.message.startsWith("NOPERM");
}

/** An actor as the wake-up paths see it. */
export interface Wakeable {
  /** Claim and run what is in the inbox. */
  wake(): void;
  /** True while it is not draining its inbox, the only time a sweep needs to look. */
  readonly idle: boolean;
  /** Its durable timers changed in Redis (TIMERS_CHANGED): re-read their head and re-arm. */
  timersChanged?(): void;
}

/** Routes wake-ups and broadcasts for the actors of one system. */
export class Wakeups {
  private readonly actors = new Map<string, Wakeable>();
  /** The app of each sharded wake-up channel subscribed (cluster layout). */
  private readonly wakeChannels = new Map<string, string>();
  /** Channel patterns (actor families) and who is told of each message on a matching channel. */
  private readonly patterns = new Map<string, (app: string) => void>();
  private readonly toSubscribe = new Set<string>();
  private readonly toUnsubscribe = new Set<string>();
  private flushScheduled = false;
  /** Settles when the (un)subscriptions queued in this tick have been sent and answered. */
  private subscribed: Promise<void> = Promise.resolve();
  private sweepTimer: TimerHandle | undefined;
  private sweeping = false;
  private sweeps = 0;
  /** Whether the server publishes keyspace events for sorted sets (checked, never set). */
  private notifications = false;
  /** Redis refused the keyspace channels (ACL): the sweep looks at inboxes until a reconnect. */
  private keyspaceRefused = false;
  private readonly db: number;

  constructor(
    private readonly sub: RedisClient,
    private readonly cmd: RedisClient,
    private readonly keys: Keyspace,
    private readonly mailbox: Mailbox,
    private readonly options: {
      /** Sweep period, ms. */
      sweepMs: number;
      /** The clock the sweep runs on (the system's `clock` option). */
      clock: HostClock;
      /** Fixed channels of the system (broadcast, ask replies) and what to do with their texts. */
      channels: Record<string, (text: string) => void>;
      /** Fixed sharded channels (ask replies in the cluster layout), one slot each. */
      shardedChannels: Record<string, (text: string) => void>;
      /** A connection came back after being lost. */
      onReconnect: () => void;
      /** Use keyspace notifications when the server has them on. */
      keyspaceEvents: boolean;
      /** This process's node id: the sweep never takes its own leases for a dead holder's. */
      nodeId: string;
      /** Redis refused a subscription (ACL); the sweep covers what it would have woken. */
      refused: (channels: "keyspace" | "actor", error: Error) => void;
    },
  ) {
    this.db = isCluster(cmd) ? 0 : Number(cmd.options.db ?? 0);
  }

  private get keyspacePrefix(): string {
    return `__keyspace@${this.db}__:`;
  }

  private keyspaceChannel(app: string): string {
    return `${this.keyspacePrefix}${this.keys.inbox(app)}`;
  }

  /** Reads the server's notify-keyspace-events and (un)subscribes the inbox events to match. */
  async checkNotifications(): Promise<void> {
    let on = false;
    if (this.options.keyspaceEvents && !this.keyspaceRefused && !isCluster(this.cmd)) {
      try {
        const [, flags = ""] = (await this.cmd.config("GET", "notify-keyspace-events")) as string[];
        on = flags.includes("K") && (flags.includes("z") || flags.includes("A"));
      } catch {
        // CONFIG is disabled on this server (managed Redis): sweep only.
      }
    }
    if (on === this.notifications) return;
    this.notifications = on;
    for (const app of this.actors.keys()) {
      const channel = this.keyspaceChannel(app);
      if (on) this.subscribe(channel);
      else this.unsubscribe(channel);
    }
  }

  /** Subscribes to the system's fixed channels and starts the sweep. */
  async start(): Promise<void> {
    this.sub.on("message", (channel: string, text: string) => {
      const fixed = this.options.channels[channel];
      if (fixed) {
        fixed(text);
        return;
      }
      // The app is read off the channel's name (no table per actor to keep in memory).
      if (channel.startsWith(CHANNEL_PREFIX)) {
        this.deliver(this.actors.get(channel.slice(CHANNEL_PREFIX.length)), text);
      } else if (text === "zadd") {
        // A keyspace event's text is the command; only an added message is news.
        const app = this.keys.appFromInbox(channel.slice(this.keyspacePrefix.length));
        if (app !== null) this.actors.get(app)?.wake();
      }
    });
    this.sub.on("pmessage", (pattern: string, channel: string, text: string) => {
      const found = this.patterns.get(pattern);
      if (!found || !channel.startsWith(CHANNEL_PREFIX)) return;
      const app = channel.slice(CHANNEL_PREFIX.length);
      // Not mail: only an instance active here has timers to re-arm; none is activated for it.
      if (text === TIMERS_CHANGED) this.actors.get(app)?.timersChanged?.();
      else found(app);
    });
    this.sub.on("smessage", (channel: string, text: string) => {
      const fixed = this.options.shardedChannels[channel];
      if (fixed) fixed(text);
      else this.deliver(this.actors.get(this.wakeChannels.get(channel) ?? ""), text);
    });
    if (isCluster(this.sub)) {
      // Sharded subscriptions made again after a slot moved: what was published meanwhile is lost.
      this.sub.on("subscribersReady", () => this.wakeAll());
    }
    // Messages may have arrived while a connection was down: look at every inbox at once.
    for (const connection of [this.sub, this.cmd]) {
      let connectedBefore = connection.status === "ready";
      connection.on("ready", () => {
        if (connectedBefore) {
          // Permissions may have changed with the connection: try the keyspace channels again.
          if (connection === this.sub) this.keyspaceRefused = false;
          this.options.onReconnect();
          this.wakeAll();
          void this.checkNotifications();
        }
        connectedBefore = true;
      });
    }
    await this.sub.subscribe(...Object.keys(this.options.channels));
    // A sharded subscription names channels of one slot only.
    await Promise.all(
      Object.keys(this.options.shardedChannels).map((channel) => this.sub.ssubscribe(channel)),
    );
    await this.checkNotifications();
    this.sweepTimer = this.options.clock.setInterval(() => void this.sweep(), this.options.sweepMs);
    this.sweepTimer.unref();
  }

  /** Stops the sweep. */
  stop(): void {
    this.options.clock.clearInterval(this.sweepTimer);
    this.sweepTimer = undefined;
  }

  /**
   * Starts waking `actor` for messages to `app`; resolves once the subscription is in place.
   * With `subscribe: false` (an instance of an actor family, whose channels a pattern already
   * covers) only the sweep and `wake` reach it.
   */
  async watch(app: string, actor: Wakeable, options: { subscribe?: boolean } = {}): Promise<void> {
    this.actors.set(app, actor);
    if (options.subscribe === false) return;
    this.subscribe(this.keys.channel(app));
    if (this.notifications) this.subscribe(this.keyspaceChannel(app));
    const wake = this.keys.wakeChannel(app);
    if (wake !== null) {
      this.wakeChannels.set(wake, app);
      // Refused (ACL) or lost with a node: the sweep finds what it would have woken.
      await this.sub.ssubscribe(wake).catch((err: Error) => this.refusedActors(err));
      // Senders wake this app on its sharded channel from now on (a hint: channel:<app> still works).
      await this.cmd.hset(this.keys.status(app), WAKE_FIELD, WAKE_SHARDED).catch(() => {});
    }
    return this.subscribed;
  }

  /**
   * Tells `onMessage` the app id of every message published on a `channel:<prefix>*` channel
   * (an actor family's instances, active or not). One PSUBSCRIBE, whatever the number of apps.
   */
  async watchPrefix(prefix: string, onMessage: (app: string) => void): Promise<void> {
    const pattern = this.prefixPattern(prefix);
    this.patterns.set(pattern, onMessage);
    await this.sub.psubscribe(pattern).catch((err: Error) => this.refusedActors(err));
  }

  /** The PSUBSCRIBE pattern of `channel:<prefix>*`, glob characters of the prefix escaped. */
  private prefixPattern(prefix: string): string {
    return `${this.keys.channel(prefix).replace(/[*?[\]\\]/g, (c) => `\\${c}`)}*`;
  }

  /** Stops `watchPrefix(prefix)`. */
  unwatchPrefix(prefix: string): void {
    const pattern = this.prefixPattern(prefix);
    if (this.patterns.delete(pattern)) void this.sub.punsubscribe(pattern).catch(() => {});
  }

  /** Stops waking anything for `app`. */
  unwatch(app: string): void {
    this.actors.delete(app);
    this.unsubscribe(this.keys.channel(app));
    if (this.notifications) this.unsubscribe(this.keyspaceChannel(app));
    const wake = this.keys.wakeChannel(app);
    if (wake !== null && this.wakeChannels.delete(wake)) void this.sub.sunsubscribe(wake).catch(() => {});
  }

  private subscribe(channel: string): void {
    this.toUnsubscribe.delete(channel);
    this.toSubscribe.add(channel);
    this.scheduleFlush();
  }

  private unsubscribe(channel: string): void {
    this.toSubscribe.delete(channel);
    this.toUnsubscribe.add(channel);
    this.scheduleFlush();
  }

  /** What a text on an actor's wake-up path asks of it: a timers hint, or else a wake-up. */
  private deliver(actor: Wakeable | undefined, text: string): void {
    if (text === TIMERS_CHANGED) actor?.timersChanged?.();
    else actor?.wake();
  }

  /** Wakes the local actor serving `app`, if any. */
  wake(app: string): void {
    this.actors.get(app)?.wake();
  }

  /** Wakes every local actor. */
  wakeAll(): void {
    for (const actor of this.actors.values()) actor.wake();
  }

  /**
   * Sends the (un)subscriptions of this tick: actor channels and keyspace channels as separate
   * commands, because one SUBSCRIBE fails whole when Redis refuses any of its channels (an ACL
   * without `__keyspace@…` channels), and the actor channels must not go down with the others.
   */
  private scheduleFlush(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    let done: () => void = () => {};
    this.subscribed = new Promise<void>((resolve) => {
      done = resolve;
    });
    queueMicrotask(() => {
      this.flushScheduled = false;
      const work: Promise<unknown>[] = [];
      const keyspace: string[] = [];
      const actors: string[] = [];
      for (const channel of this.toSubscribe) {
        (channel.startsWith(this.keyspacePrefix) ? keyspace : actors).push(channel);
      }
      this.toSubscribe.clear();
      if (actors.length > 0) {
        work.push(this.sub.subscribe(...actors).catch((err: Error) => this.refusedActors(err)));
      }
      if (keyspace.length > 0) {
        work.push(this.sub.subscribe(...keyspace).catch((err: Error) => this.refusedKeyspace(err)));
      }
      if (this.toUnsubscribe.size > 0) {
        work.push(this.sub.unsubscribe(...this.toUnsubscribe));
        this.toUnsubscribe.clear();
      }
      // A failed (un)subscribe is redone by ioredis on reconnect; the sweep covers the gap.
      void Promise.allSettled(work).then(() => done());
    });
  }

  /** Redis refused actor channels (ACL): the sweep, which looks at inboxes, still finds their messages. */
  private refusedActors(err: Error): void {
    if (isRefusal(err)) this.options.refused("actor", err);
  }

  /** Redis refused the keyspace channels (ACL): stop relying on them; the sweep looks at inboxes again. */
  private refusedKeyspace(err: Error): void {
    if (!isRefusal(err)) return;
    this.keyspaceRefused = true;
    this.notifications = false;
    this.options.refused("keyspace", err);
    this.wakeAll();
  }

  /**
   * Wakes idle actors whose inbox is not empty, and recovers messages stuck in the processing
   * set of any local actor (expired lease, dead holder). When nothing is waiting anywhere, and
   * that is the idle case, this is one EXISTS command.
   */
  async sweep(): Promise<void> {
    if (this.sweeping || this.cmd.status !== "ready") return;
    this.sweeping = true;
    this.sweeps += 1;
    try {
      // Every tenth period: has someone turned keyspace notifications on or off?
      if (this.sweeps % 10 === 0) await this.checkNotifications();
      const apps = [...this.actors.keys()];
      // With notifications a bare ZADD wakes its actor itself; leases still need a look.
      const inboxes = this.notifications ? [] : apps.map((app) => this.keys.inbox(app));
      const leases = !this.notifications || this.sweeps % 5 === 0;
      const processing = leases ? apps.map((app) => this.keys.processing(app)) : [];
      const keys = [...inboxes, ...processing];
      if (keys.length === 0) return;
      const found = await this.existing(
        keys,
        (i) => this.actors.get(apps[i % apps.length] as string)?.idle ?? true,
      );
      await Promise.all(
        apps.map(async (app, i) => {
          const hasInbox = inboxes.length > 0 && found[i];
          const returned =
            processing.length > 0 && found[inboxes.length + i]
              ? await this.mailbox.recover(app, this.options.nodeId)
              : 0;
          // A busy actor is woken too: it then looks whether what came in (a peer's bare ZADD
          // of a CRITICAL) outranks the rest of its claimed batch.
          if (hasInbox || returned > 0) this.actors.get(app)?.wake();
        }),
      );
    } catch {
      // Connection trouble: the reconnect path wakes everything.
    } finally {
      this.sweeping = false;
    }
  }

  /**
   * Which of `keys` exist, at a cost that follows what exists, not how many keys there are. The
   * keys of busy actors (`isIdle(i)` false: their inbox and processing set usually exist) are
   * asked one by one; the keys of idle actors first with one EXISTS over all of them (0 in the
   * idle case), and only when that counts some, by halves, so that a few non-empty inboxes among
   * 10,000 cost a few dozen commands, not 10,000. On a cluster EXISTS over many keys is one
   * command per slot anyway, so each key is asked once.
   */
  private async existing(keys: readonly string[], isIdle: (i: number) => boolean): Promise<boolean[]> {
    const found = new Array<boolean>(keys.length).fill(false);
    const busy: number[] = [];
    const idle: number[] = [];
    for (let i = 0; i < keys.length; i++) (isIdle(i) ? idle : busy).push(i);
    const ask = async (positions: number[]): Promise<void> => {
      const answers = await existsEach(
        this.cmd,
        positions.map((i) => keys[i] as string),
      );
      for (const [k, i] of positions.entries()) found[i] = answers[k] ?? false;
    };
    const halve = async (positions: number[]): Promise<void> => {
      if (isCluster(this.cmd)) return ask(positions);
      const count = await countExisting(
        this.cmd,
        positions.map((i) => keys[i] as string),
      );
      if (count === 0) return;
      if (count === positions.length) {
        for (const i of positions) found[i] = true;
        return;
      }
      if (positions.length <= 8) return ask(positions);
      const mid = positions.length >> 1;
      await Promise.all([halve(positions.slice(0, mid)), halve(positions.slice(mid))]);
    };
    await Promise.all([busy.length > 0 ? ask(busy) : undefined, idle.length > 0 ? halve(idle) : undefined]);
    return found;
  }
}
