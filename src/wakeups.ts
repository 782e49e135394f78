/**
 * Wake-ups. One subscriber connection per system carries the `channel:<app>` of every local
 * actor plus `channel:broadcast`. Pub/sub is only a hint, so two more paths guarantee that a
 * message is noticed: after any reconnect every local inbox is checked at once, and a sweep
 * finds inboxes that filled without a PUBLISH (a peer's bare ZADD). The sweep is one EXISTS
 * over the inboxes of the actors that are idle, so an idle process sends one command per
 * interval whatever its number of actors; only when that finds something does it ask which.
 * The same sweep returns to the inbox the messages of local actors whose lease expired or
 * whose holder died, so a crashed process's work comes back even when nothing new arrives.
 */
import type { Redis } from "ioredis";
import type { Keyspace } from "./keyspace.js";
import type { Mailbox } from "./mailbox.js";

/** An actor as the wake-up paths see it. */
export interface Wakeable {
  /** Claim and run what is in the inbox. */
  wake(): void;
  /** True while it is not draining its inbox, the only time a sweep needs to look. */
  readonly idle: boolean;
}

/** Routes wake-ups and broadcasts for the actors of one system. */
export class Wakeups {
  private readonly actors = new Map<string, Wakeable>();
  private readonly byChannel = new Map<string, string>();
  private readonly toSubscribe = new Set<string>();
  private readonly toUnsubscribe = new Set<string>();
  private flushScheduled = false;
  private sweepTimer: NodeJS.Timeout | undefined;
  private sweeping = false;

  constructor(
    private readonly sub: Redis,
    private readonly cmd: Redis,
    private readonly keys: Keyspace,
    private readonly mailbox: Mailbox,
    private readonly options: {
      /** Sweep period, ms. */
      sweepMs: number;
      /** A text arrived on the broadcast channel. */
      onBroadcast: (text: string) => void;
      /** A connection came back after being lost. */
      onReconnect: () => void;
    },
  ) {}

  /** Subscribes to the broadcast channel and starts the sweep. */
  async start(): Promise<void> {
    this.sub.on("message", (channel: string, text: string) => {
      if (channel === this.keys.broadcastChannel()) {
        this.options.onBroadcast(text);
        return;
      }
      const app = this.byChannel.get(channel);
      if (app !== undefined) this.actors.get(app)?.wake();
    });
    // Messages may have arrived while a connection was down: look at every inbox at once.
    for (const connection of [this.sub, this.cmd]) {
      let connectedBefore = connection.status === "ready";
      connection.on("ready", () => {
        if (connectedBefore) {
          this.options.onReconnect();
          this.wakeAll();
        }
        connectedBefore = true;
      });
    }
    await this.sub.subscribe(this.keys.broadcastChannel());
    this.sweepTimer = setInterval(() => void this.sweep(), this.options.sweepMs);
    this.sweepTimer.unref();
  }

  /** Stops the sweep. */
  stop(): void {
    clearInterval(this.sweepTimer);
    this.sweepTimer = undefined;
  }

  /** Starts waking `actor` for messages to `app`. */
  watch(app: string, actor: Wakeable): void {
    this.actors.set(app, actor);
    const channel = this.keys.channel(app);
    this.byChannel.set(channel, app);
    this.toUnsubscribe.delete(channel);
    this.toSubscribe.add(channel);
    this.scheduleFlush();
  }

  /** Stops waking anything for `app`. */
  unwatch(app: string): void {
    this.actors.delete(app);
    const channel = this.keys.channel(app);
    this.byChannel.delete(channel);
    this.toSubscribe.delete(channel);
    this.toUnsubscribe.add(channel);
    this.scheduleFlush();
  }

  /** Wakes the local actor serving `app`, if any. */
  wake(app: string): void {
    this.actors.get(app)?.wake();
  }

  /** Wakes every local actor. */
  wakeAll(): void {
    for (const actor of this.actors.values()) actor.wake();
  }

  /** Sends the (un)subscriptions of this tick as one command each. */
  private scheduleFlush(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    queueMicrotask(() => {
      this.flushScheduled = false;
      if (this.toSubscribe.size > 0) {
        const channels = [...this.toSubscribe];
        this.toSubscribe.clear();
        this.sub.subscribe(...channels).catch(() => {
          // ioredis re-subscribes on reconnect; the sweep covers the gap.
        });
      }
      if (this.toUnsubscribe.size > 0) {
        const channels = [...this.toUnsubscribe];
        this.toUnsubscribe.clear();
        this.sub.unsubscribe(...channels).catch(() => {});
      }
    });
  }

  /**
   * Wakes idle actors whose inbox is not empty, and recovers messages stuck in the processing
   * set of any local actor (expired lease, dead holder). When nothing is waiting anywhere, and
   * that is the idle case, this is one EXISTS command.
   */
  async sweep(): Promise<void> {
    if (this.sweeping || this.cmd.status !== "ready") return;
    this.sweeping = true;
    try {
      const apps = [...this.actors.keys()];
      if (apps.length === 0) return;
      const inboxes = apps.map((app) => this.keys.inbox(app));
      const processing = apps.map((app) => this.keys.processing(app));
      if ((await this.cmd.exists(...inboxes, ...processing)) === 0) return;
      const pipeline = this.cmd.pipeline();
      for (let i = 0; i < apps.length; i++) {
        pipeline.exists(inboxes[i] as string);
        pipeline.exists(processing[i] as string);
      }
      const results = ((await pipeline.exec()) ?? []).map(([, found]) => found === 1);
      await Promise.all(
        apps.map(async (app, i) => {
          const hasInbox = results[2 * i];
          const returned = results[2 * i + 1] ? await this.mailbox.recover(app) : 0;
          const actor = this.actors.get(app);
          if (actor?.idle && (hasInbox || returned > 0)) actor.wake();
        }),
      );
    } catch {
      // Connection trouble: the reconnect path wakes everything.
    } finally {
      this.sweeping = false;
    }
  }
}
