/**
 * The actor system: one per process (or per app id). It owns two Redis connections (commands
 * and a subscriber), the heartbeat, the wake-up paths, the asks in flight, and the actors it
 * spawned. Messages sent from outside any actor carry the system's own `appId`, whose inbox the
 * system serves itself: that is where every `ask` reply arrives.
 */
import { hostname } from "node:os";
import type { ClusterNode, ClusterOptions, RedisOptions } from "ioredis";
import { type Logger, pino } from "pino";
import { Activations } from "./activation.js";
import {
  type ActorDefinition,
  type ActorRef,
  type AskOptions,
  checkActorDefinition,
  checkFamilyDefinition,
  type FamilyDefinition,
  type FamilyRef,
  isFamilyDefinition,
  type Protocol,
  type TellOptions,
  type UntypedProtocol,
} from "./actor.js";
import { PendingAsks } from "./asks.js";
import { Batcher } from "./batcher.js";
import { ActorCell, type CellHost, type CellOptions } from "./cell.js";
import { checkHostClock, type HostClock, RedisClock, realTime } from "./clock.js";
import { isCluster, masters, type RedisClient, scanAll } from "./cluster.js";
import {
  type ConnectionSpec,
  connectionName,
  createClient,
  describeNodes,
  describeTarget,
  explainCommandFailure,
  openClient,
  specOf,
  subscriberSpec,
} from "./connection.js";
import { type Unwatch, watchConnection } from "./connection-watch.js";
import { settledBefore } from "./deadline.js";
import { createEnvelope, decodeEnvelope, type Envelope, encodeEnvelope, newMessageId } from "./envelope.js";
import { errorReply, failedRequest } from "./error-replies.js";
import {
  ActivationConflictError,
  AskFailedError,
  AskTimeoutError,
  DuplicateActorError,
  EvictionPolicyError,
  InvalidOptionError,
  RedisUnavailableError,
  type StateLoadError,
  SystemStoppedError,
} from "./errors.js";
import { SystemEventEmitter, type SystemEvents } from "./events.js";
import { type FamilyHost, FamilyPool } from "./family.js";
import { claimActorKeys, claimProcessKeys, expireProcessKeys, isActorApp } from "./hygiene.js";
import { checkId } from "./ids.js";
import { Keyspace, type KeyspaceOptions } from "./keyspace.js";
import type { MessageStatus } from "./lifecycle.js";
import { type EncodedMessage, Mailbox, type MailboxOptions, mailboxConfig } from "./mailbox.js";
import {
  checkBoolean,
  checkNumber,
  checkObject,
  checkOneOf,
  checkSendOptions,
  MAX_TIMER_MS,
  requireObject,
} from "./options.js";
import { type AppStatus, handlesField, Presence, ROLE_SYSTEM, readStatus, scanStatuses } from "./presence.js";
import type { Priority } from "./priority.js";
import { INDEX_POLL_MS, Scheduler } from "./scheduler.js";
import {
  type Child,
  type ChildSpec,
  checkSpecTree,
  type ExitListener,
  type ExitReason,
  isSupervisorSpec,
  type SupervisionHost,
  type SupervisorRef,
  SupervisorRuntime,
  startFailure,
  supervisor,
} from "./supervisor.js";
import { checkTracingOption, type OpenSpan, Tracing, type TracingOption } from "./tracing.js";
import { Wakeups } from "./wakeups.js";

/**
 * A Redis Cluster to run on: its startup nodes (`redis://host:port` URLs, or `{ host, port }`;
 * one reachable node is enough, the rest are discovered) and any of ioredis' ClusterOptions
 * (`redisOptions` carries what every node connection needs: password, username, TLS).
 */
export type ClusterConfig = { nodes: ClusterNode[] } & ClusterOptions;

/** Options of `createSystem`. */
export interface SystemOptions extends MailboxOptions {
  /** This process's app id: the sender of messages from outside any actor, and the inbox of replies. */
  appId: string;
  /**
   * Redis URL (`redis://`, `rediss://` for TLS, with user and password if needed) or ioredis options.
   * @default process.env.REDIS_URL, else "redis://127.0.0.1:6379"
   */
  redis?: string | RedisOptions;
  /**
   * Run on a Redis Cluster instead of one server (ioredis' Cluster client underneath). Implies
   * the cluster key layout (`keyspace.hashTag`), which every program of the deployment must use
   * (docs/PROTOCOL.md, "Cluster layout"). Not together with `redis`.
   * @default process.env.REDIS_CLUSTER (comma-separated node URLs) when set and `redis` is not
   *   given, else none (one server)
   */
  cluster?: ClusterConfig;
  /**
   * Key layout.
   * @default {} (the peers' layout, docs/PROTOCOL.md); { hashTag: true } on a cluster
   */
  keyspace?: KeyspaceOptions;
  /**
   * Where logs go.
   * @default a pino logger at level process.env.REDACTOR_LOG_LEVEL, else "info"
   */
  logger?: Logger;
  /**
   * How many messages an actor claims per round trip.
   * @default 64
   */
  claimBatch?: number;
  /**
   * How often this process refreshes its heartbeat, ms; it is stale after three periods.
   * @default 2000
   */
  heartbeatMs?: number;
  /**
   * How often idle inboxes are checked for messages that came without a PUBLISH, ms.
   * @default 1000
   */
  sweepMs?: number;
  /**
   * Default `ask` timeout, ms.
   * @default 5000
   */
  askTimeoutMs?: number;
  /**
   * How long `shutdown` lets handlers in flight finish, ms.
   * @default 10000
   */
  shutdownTimeoutMs?: number;
  /**
   * Restart intensity of the root supervisor, under which `system.spawn` puts actors and
   * supervisors; exceeding it stops the system with a `system.failed` event.
   * Restarts wait out their backoff, so the window must be long enough to hold them.
   * @default { maxRestarts: 10, withinMs: 60000 }
   */
  rootIntensity?: { maxRestarts: number; withinMs: number };
  /**
   * What a send does while Redis is unreachable: `"queue"` waits and sends it once the
   * connection is back; `"fail"` rejects at once with RedisUnavailableError.
   * @default "queue"
   */
  whenDisconnected?: "queue" | "fail";
  /**
   * Use the server's keyspace notifications for sorted sets when they are on
   * (`notify-keyspace-events` containing K and z, or KA): a bare ZADD then wakes its actor at
   * once and the sweep does less. redactor never changes the server's configuration.
   * @default true
   */
  keyspaceEvents?: boolean;
  /**
   * Refuse to start (EvictionPolicyError) when Redis' `maxmemory-policy` evicts keys (anything
   * but `noeviction`): eviction silently deletes inboxes, leases and presence. With `false` such
   * a policy is only logged as a warning. Where `CONFIG GET` is not allowed (managed Redis) the
   * policy cannot be read and nothing is checked.
   * @default false
   */
  requireNoEviction?: boolean;
  /**
   * Shut down gracefully on SIGINT and SIGTERM, then exit the process (for runnable programs).
   * @default false
   */
  handleSignals?: boolean;
  /**
   * The clock of this system's host-side timers (src/clock.ts): lease renewal, the finish
   * linger, retry wake-ups, handler timeouts, ask timeouts, supervisor restart backoff and the
   * restart-intensity window, the sweep, family ticks and idle passivation, stand-by retries,
   * presence repair, actor timers. Pass a `SimulatedClock` to run them in virtual time in tests
   * (`clock.advance(ms)`).
   *
   * It does NOT drive what Redis judges by its own `TIME`: message deadlines, a lease's expiry,
   * the due time of a retry or a scheduled message (a retry is claimed again only once Redis'
   * clock has passed it), heartbeat staleness. Nor the heartbeat worker thread, the connection's
   * timeouts, Redis clock sync, metrics, or shutdown deadlines: those stay on real time.
   * @default real time (Node's timers), with `now()` = Redis' clock read locally (the system's
   *   RedisClock)
   */
  clock?: HostClock;
  /**
   * OpenTelemetry spans for send, ask, claim, handle and reply (src/tracing.ts; README,
   * "Tracing"), through `@opentelemetry/api`, an optional peer dependency. `true` traces with the
   * global tracer provider (InvalidOptionError when the API is not installed), `{ tracer }` with
   * that Tracer, `false` never (the API is not loaded). The trace context travels in each
   * message's hash (`traceparent`), never in its envelope.
   * @default on when `@opentelemetry/api` is installed and a global tracer provider is
   *   registered when createSystem runs (start the OpenTelemetry SDK first), else off
   */
  tracing?: TracingOption;
}

/** What `spawn` returns for a spec: a ref to the actor, the family, or the supervisor. */
export type SpawnedRef<D> =
  D extends FamilyDefinition<infer P, infer _S>
    ? FamilyRef<P>
    : D extends ActorDefinition<infer P, infer _S>
      ? ActorRef<P>
      : SupervisorRef;

/** Options of `broadcast`. */
export interface BroadcastOptions {
  /** @default Priority.NORMAL */
  priority?: Priority;
}

/** A running actor system. */
export interface ActorSystem {
  /** The system's own app id. */
  readonly appId: string;
  /** Unique name of this process's system, used for its heartbeat and leases. */
  readonly nodeId: string;
  /** The system's logger. */
  readonly log: Logger;
  /** Typed events: messages sent, claimed, completed, failed …, asks, actors. */
  readonly events: SystemEventEmitter;
  /**
   * Starts an actor (after its `setup`) and returns a ref to it; or joins an actor family's pool
   * (this process serves its instances `<family>:<key>`, activated on their first message, spread
   * over the pool's processes, passivated when idle) and returns a FamilyRef; or starts a
   * supervisor and its children, in order, and returns a SupervisorRef.
   */
  spawn<const D extends ChildSpec>(spec: D): Promise<SpawnedRef<D>>;
  /** Stops one local actor: its message in hand finishes, the rest of its claim goes back. */
  stop(id: string): Promise<void>;
  /** A ref to any app id; messages through it are sent as the system's appId. */
  ref<P extends Protocol<P> = UntypedProtocol>(id: string): ActorRef<P>;
  /** Publishes a message on `channel:broadcast` to every actor that handles its type. */
  broadcast(type: string, payload: unknown, options?: BroadcastOptions): Promise<void>;
  /**
   * The status of a message (`get_message_status`), or null when unknown or expired. In the
   * cluster layout the hash is `message:{recipient}:<id>`: give `recipient` when you know it;
   * else it is known for messages this system sent recently, and otherwise found with a SCAN
   * of every master (slow on a large keyspace).
   */
  messageStatus(id: string, recipient?: string): Promise<MessageStatus | null>;
  /**
   * Cancels a scheduled message (`tell`/`ask` with `delayMs` or `at`) that has not been
   * delivered yet: it never reaches its recipient and its status becomes `cancelled`. Resolves
   * true when it was cancelled, false when there is no such message or it is not scheduled any
   * more (already delivered, or cancelled). `recipient` finds its hash as in `messageStatus`.
   * @throws InvalidOptionError for an empty id; RedisCommandError when Redis refuses the script.
   */
  cancel(id: string, recipient?: string): Promise<boolean>;
  /** The presence of an app, or null when it never announced itself. */
  status(app: string): Promise<AppStatus | null>;
  /** App ids that are online now (SCAN, heartbeat checked). */
  listOnline(): Promise<string[]>;
  /** Ids of the actors running in this system. */
  actorIds(): string[];
  /** Resolves when the system has shut down, for whatever reason (shutdown, root failure). */
  readonly stopped: Promise<void>;
  /**
   * True while the system is started, not shutting down, and both its Redis connections are
   * usable (`/ready` of serveMetrics answers from it).
   */
  readonly ready: boolean;
  /** Stops every actor (handlers in flight may finish), marks them offline, closes connections. */
  shutdown(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

/** The cluster to use: the `cluster` option, else REDIS_CLUSTER when no `redis` option is given. */
function clusterFrom(options: SystemOptions): ClusterConfig | undefined {
  if (options.cluster) return options.cluster;
  const env = process.env.REDIS_CLUSTER;
  if (options.redis !== undefined || !env) return undefined;
  return {
    nodes: env
      .split(",")
      .map((node) => node.trim())
      .filter((node) => node !== ""),
  };
}

/** How to connect, and where that is (for messages), from the system's options. */
function connectionFrom(options: SystemOptions): { spec: ConnectionSpec; where: string } {
  const cluster = clusterFrom(options);
  if (cluster) {
    const { nodes, ...clusterOptions } = cluster;
    return {
      spec: {
        kind: "cluster",
        nodes,
        options: {
          // A slot half-way through a migration answers ASK/TRYAGAIN for as long as the move
          // takes: up to 64 redirections 100 ms apart (ioredis' default, 16, gives up after 1.6 s
          // and a finish that gives up makes its message run again).
          maxRedirections: 64,
          // Commands wait out a failover or a reconnect rather than fail at the first try.
          ...clusterOptions,
          redisOptions: { maxRetriesPerRequest: null, ...clusterOptions.redisOptions },
        },
      },
      where: describeNodes(nodes),
    };
  }
  const option = options.redis;
  const base: RedisOptions = { maxRetriesPerRequest: null };
  if (typeof option === "object") {
    return {
      spec: { kind: "server", options: { ...base, ...option } },
      where: describeTarget(option, undefined),
    };
  }
  const url = option ?? process.env.REDIS_URL ?? "redis://127.0.0.1:6379";
  return { spec: { kind: "server", url, options: base }, where: describeTarget(url, url) };
}

/** How many recent sends `messageStatus` finds without a SCAN in the cluster layout. */
const RECENT_SENDS = 10_000;

/**
 * The Batcher group of the sends from `sender` to `recipient`: a JSON array, which no two
 * different pairs share whatever characters their ids hold.
 */
function sendGroup(sender: string, recipient: string): string {
  return JSON.stringify([sender, recipient]);
}

class Ref implements ActorRef {
  constructor(
    private readonly system: RedactorSystem,
    private readonly sender: string,
    readonly id: string,
  ) {}

  tell(type: string, payload: unknown, options?: TellOptions): Promise<string> {
    return this.system.tellAs(this.sender, this.id, type, payload, options);
  }

  ask(type: string, payload: unknown, options?: AskOptions): Promise<never> {
    return this.system.ask(this.id, type, payload, options) as Promise<never>;
  }
}

class RedactorSystem implements ActorSystem, CellHost, SupervisionHost, FamilyHost {
  readonly nodeId: string;
  readonly keys: Keyspace;
  readonly mailbox: Mailbox;
  readonly log: Logger;
  readonly claimBatch: number;
  readonly events = new SystemEventEmitter((err, event) =>
    this.log.error({ err, event }, "an event listener threw; fix the listener"),
  );
  private readonly asks: PendingAsks;
  /**
   * Recipients of the messages this system sent lately (cluster layout), so `messageStatus(id)`
   * finds `message:{recipient}:<id>` without a SCAN; the oldest are forgotten past RECENT_SENDS.
   */
  private readonly recipients = new Map<string, string>();
  /** Offered every message of the system's own inbox first: ask replies never reach a handler. */
  private readonly takeReply = (message: Envelope) => this.asks.offer(message);
  /** Concurrent sends from one sender to one recipient go to Redis as one script call. */
  private readonly sends = new Batcher<EncodedMessage, number[]>((batch) => this.mailbox.send(batch), 256);
  /**
   * Sends Redis has not answered yet (tells, asks, broadcasts), each with what rejects it: at
   * shutdown those still waiting (Redis down or paused) reject with SystemStoppedError.
   */
  private readonly sendsInFlight = new Map<Promise<unknown>, () => void>();
  /**
   * `spawn` calls still starting, each with what rejects it: shutdown waits for them (until its
   * deadline) and stops what they started; those still starting then reject with SystemStoppedError.
   */
  private readonly spawning = new Map<Promise<unknown>, () => void>();
  /** Set when shutdown starts stopping the supervision tree; a spawn ending later stops its own child. */
  private treeStopped = false;
  private readonly presence: Presence;
  /** Ownership of the single-activation actors this process runs or stands by for. */
  readonly activations: Activations;
  /** The actor families this process serves, by name. */
  private readonly families = new Map<string, FamilyPool>();
  /** The heartbeat period, ms. */
  readonly heartbeatMs: number;
  /** Redis' clock, read locally: every timestamp this system writes follows it. */
  readonly clock: RedisClock;
  /** The clock of host-side timers (`clock` option): real time on Redis' clock, or virtual time. */
  readonly hostClock: HostClock;
  private readonly requireNoEviction: boolean;
  readonly wakeups: Wakeups;
  /** Delivers this and every process's scheduled messages when due (src/scheduler.ts). */
  readonly scheduler: Scheduler;
  private readonly cells = new Map<string, ActorCell>();
  private systemCell: ActorCell | undefined;
  private readonly root: SupervisorRuntime;
  private stopping: Promise<void> | undefined;
  private readonly askTimeoutMs: number;
  /** How old a lease confirmation may be when a cell starts a message, ms. */
  private readonly leaseConfirmMs: number;
  readonly shutdownTimeoutMs: number;
  private readonly failWhenDisconnected: boolean;
  private markStopped: () => void = () => {};
  /** Stop following the connections' drops and recoveries (src/connection-watch.ts). */
  private unwatchConnections: Unwatch[] = [];
  readonly stopped = new Promise<void>((resolve) => {
    this.markStopped = resolve;
  });

  constructor(
    readonly appId: string,
    private readonly cmd: RedisClient,
    private readonly sub: RedisClient,
    connection: ConnectionSpec,
    options: SystemOptions,
    /** The spans of this system, undefined when tracing is off (src/tracing.ts). */
    readonly tracing?: Tracing,
  ) {
    this.nodeId = `${appId}@${hostname()}:${process.pid}:${newMessageId().slice(0, 8)}`;
    // A cluster needs every app's keys in one slot: the hash-tagged layout.
    this.keys = new Keyspace(isCluster(cmd) ? { hashTag: true } : options.keyspace);
    this.mailbox = new Mailbox(cmd, this.keys, mailboxConfig(options));
    this.log = options.logger ?? pino({ name: "redactor", level: process.env.REDACTOR_LOG_LEVEL ?? "info" });
    this.claimBatch = options.claimBatch ?? 64;
    this.askTimeoutMs = options.askTimeoutMs ?? 5000;
    this.shutdownTimeoutMs = options.shutdownTimeoutMs ?? 10_000;
    this.failWhenDisconnected = options.whenDisconnected === "fail";
    this.requireNoEviction = options.requireNoEviction ?? false;
    this.clock = new RedisClock(cmd, () => this.presence.clockMoved());
    this.hostClock = options.clock ?? realTime(() => this.clock.nowMs());
    this.asks = new PendingAsks(this.hostClock);
    // Leases are confirmed at least once per heartbeat period while held: a process frozen long
    // enough to be taken for dead then finds out before it starts anything else.
    this.leaseConfirmMs = Math.min(this.mailbox.config.leaseMs / 3, options.heartbeatMs ?? 2000);
    this.presence = new Presence({
      redis: cmd,
      connection: specOf(cmd, connection),
      keys: this.keys,
      nodeId: this.nodeId,
      heartbeatMs: options.heartbeatMs ?? 2000,
      clock: this.clock,
      hostClock: this.hostClock,
      log: this.log,
      events: this.events,
    });
    this.heartbeatMs = options.heartbeatMs ?? 2000;
    this.activations = new Activations(
      cmd,
      this.keys,
      this.nodeId,
      this.heartbeatMs,
      this.log,
      this.hostClock,
    );
    this.scheduler = new Scheduler({
      redis: cmd,
      keys: this.keys,
      // Real time, not the `clock` option: what it waits for is a due time on Redis' real clock.
      clock: realTime(() => this.clock.nowMs()),
      redisNowMs: () => this.clock.nowMs(),
      messageTtlSeconds: this.mailbox.config.messageTtlSeconds,
      pollMs: Math.max(options.sweepMs ?? 1000, INDEX_POLL_MS),
      log: this.log,
      promoted: (app, count) => this.events.emit("message.due", { recipient: app, count }),
    });
    this.wakeups = new Wakeups(sub, cmd, this.keys, this.mailbox, {
      sweepMs: options.sweepMs ?? 1000,
      clock: this.hostClock,
      channels: {
        [this.keys.broadcastChannel()]: (text) => this.onBroadcast(text),
        [this.keys.scheduledChannel()]: (text) => this.scheduler.onPublished(text),
        ...(this.keys.sharded
          ? {}
          : { [this.keys.replyChannel(appId)]: (text: string) => this.onPushedReply(text) }),
      },
      shardedChannels: this.keys.sharded
        ? { [this.keys.replyChannel(appId)]: (text) => this.onPushedReply(text) }
        : {},
      onReconnect: () => {
        void this.reannounce();
        // Redis may have restarted: what fell due meanwhile is delivered now.
        this.scheduler.wake();
      },
      keyspaceEvents: options.keyspaceEvents ?? true,
      nodeId: this.nodeId,
      refused: (channels, err) => {
        this.log.warn(
          { channels, err },
          channels === "keyspace"
            ? "Redis refused the keyspace notification channels (ACL); a bare ZADD is found by the " +
                "sweep instead (within sweepMs); allow &__keyspace@*__:queue:* to be woken at once"
            : "Redis refused actor wake-up channels (ACL); messages are found by the sweep instead " +
                "(within sweepMs); allow &channel:* (see README, least privileges)",
        );
        this.events.emit("subscription.refused", { channels, error: err.message });
      },
    });
    const intensity = options.rootIntensity ?? { maxRestarts: 10, withinMs: 60_000 };
    this.root = new SupervisorRuntime(this, supervisor({ id: "root", ...intensity, children: [] }), {
      childExited: (_child, reason) => this.rootFailed(reason.error),
    });
  }

  /**
   * After a reconnect: Redis may have restarted without its data (or be another server after a
   * failover, with another clock), so measure its clock and write this process's heartbeat and
   * its actors' presence again.
   */
  private async reannounce(): Promise<void> {
    if (this.stopping) return;
    this.presence.beatNow();
    try {
      await this.clock.sync();
      await this.presence.reannounce();
    } catch (err) {
      this.log.warn({ err }, "could not re-announce presence after reconnecting");
    }
  }

  /**
   * Warns (or, with requireNoEviction, throws EvictionPolicyError) when Redis evicts keys under
   * memory pressure. Skipped where CONFIG GET is not allowed.
   */
  private async checkEvictionPolicy(): Promise<void> {
    let policy: string | undefined;
    try {
      // Every master of a cluster: each evicts its own keys.
      for (const node of masters(this.cmd)) {
        const [, read] = (await node.config("GET", "maxmemory-policy")) as string[];
        if (read !== undefined && read !== "noeviction") policy = read;
      }
    } catch (err) {
      this.log.debug({ err }, "cannot read maxmemory-policy (CONFIG GET not allowed); not checked");
      return;
    }
    if (policy === undefined) return;
    const error = new EvictionPolicyError(policy);
    if (this.requireNoEviction) throw error;
    this.log.warn({ policy }, error.message);
  }

  get system(): ActorSystem {
    return this;
  }

  get ready(): boolean {
    return (
      this.unwatchConnections.length > 0 &&
      !this.stopping &&
      this.cmd.status === "ready" &&
      this.sub.status === "ready"
    );
  }

  async start(): Promise<void> {
    await this.checkEvictionPolicy();
    await this.mailbox.load();
    await this.clock.start();
    const existing = await readStatus(this.cmd, this.keys, this.appId);
    if (existing?.online && existing.heartbeat === "alive") {
      // Both would serve this inbox and take each other's ask replies.
      this.log.warn(
        { appId: this.appId, node: existing.fields.node },
        "another live process already uses this appId; give each process its own appId, " +
          "or asks will lose their replies to the other one",
      );
    }
    await this.presence.start();
    try {
      await this.wakeups.start();
      this.scheduler.start();
      await this.root.start();
      await this.startSystemCell();
    } catch (err) {
      // No heartbeat thread or clock timer outlives a system that failed to start.
      await this.scheduler.stop();
      this.wakeups.stop();
      this.clock.stop();
      await this.presence.halt();
      throw err;
    }
  }

  /**
   * The system has started (createSystem): follows the connections' drops and recoveries, logs
   * it at info (with `where`, the server or cluster without its password), and emits
   * `system.started` on the next turn of the event loop, once the caller can listen.
   */
  announceStarted(where: string): void {
    this.unwatchConnections = [
      watchConnection(this.cmd, "commands", this.log, this.events),
      watchConnection(this.sub, "subscriber", this.log, this.events),
    ];
    this.log.info(
      { appId: this.appId, node: this.nodeId, redis: where, cluster: isCluster(this.cmd) },
      "system started",
    );
    setImmediate(() => {
      if (!this.stopping) this.events.emit("system.started", { appId: this.appId, node: this.nodeId });
    });
  }

  refFrom(sender: string, target: string): ActorRef {
    this.keys.checkApp(target, "ref id");
    return new Ref(this, sender, target);
  }

  ref<P extends Protocol<P> = UntypedProtocol>(id: string): ActorRef<P> {
    this.keys.checkApp(id, "ref id");
    return new Ref(this, this.appId, id) as unknown as ActorRef<P>;
  }

  async tellAs(
    sender: string,
    recipient: string,
    type: string,
    payload: unknown,
    options: TellOptions = {},
  ): Promise<string> {
    const what = `send "${type}" to "${recipient}"`;
    if (this.stopping) throw new SystemStoppedError(what);
    checkSendOptions(options, "tell");
    this.checkConnected(what);
    const { delayMs, at, ...rest } = options;
    const env = createEnvelope({ sender, recipient, type, payload, ...rest }, this.clock);
    const due = this.dueTime({ delayMs, at }, env);
    // Throws UnserializableValueError or MessageTooLargeError before anything is sent.
    const encoded = this.mailbox.encode(env);
    const span = this.tracing?.send(encoded, due?.dueMs);
    if (due) {
      await this.traced(span, this.untilStopped(this.schedule(encoded, due), what));
      return env.id;
    }
    const { result: skipped, index } = await this.traced(
      span,
      this.untilStopped(this.sends.add(sendGroup(sender, recipient), encoded), what),
    );
    if (skipped.includes(index)) {
      this.log.debug(
        { msgId: env.id, recipient },
        "not sent again: this id is already pending, running or done",
      );
    } else {
      this.emitSent(env);
    }
    return env.id;
  }

  async ask(recipient: string, type: string, payload: unknown, options: AskOptions = {}): Promise<unknown> {
    const what = `ask "${type}" of "${recipient}"`;
    if (this.stopping) throw new SystemStoppedError(what);
    checkSendOptions(options, "ask");
    this.checkConnected(what);
    const timeoutMs = options.timeoutMs ?? this.askTimeoutMs;
    const env = createEnvelope(
      {
        sender: this.appId,
        recipient,
        type,
        payload,
        priority: options.priority,
        timeoutMs,
      },
      this.clock,
    );
    const due = this.dueTime(options, env);
    // Throws UnserializableValueError or MessageTooLargeError before anything is sent.
    const encoded = this.mailbox.encode(env);
    const askSpan = this.tracing?.ask(env);
    const span = askSpan && this.tracing?.send(encoded, due?.dueMs, askSpan);
    const started = performance.now();
    // The outcome's handlers are attached before anything is awaited: the timeout may fire
    // while the send is still held up (Redis paused or down), and must reach the caller. A
    // scheduled request's timeout counts from its due time (whole ms: the delay is fractional).
    const waitMs = Math.ceil(timeoutMs + (due?.delayMs ?? 0));
    const outcome = this.traced(askSpan, this.asks.wait(env.id, recipient, type, waitMs, options.match)).then(
      (payload) => {
        this.events.emit("ask.replied", {
          id: env.id,
          recipient,
          type,
          latencyMs: performance.now() - started,
        });
        return payload;
      },
      (err: unknown) => {
        if (err instanceof AskTimeoutError)
          this.events.emit("ask.timeout", { id: env.id, recipient, type, timeoutMs });
        else if (err instanceof AskFailedError)
          this.events.emit("ask.failed", {
            id: env.id,
            recipient,
            type,
            reason: err.reason,
            error: err.detail,
          });
        throw err;
      },
    );
    const sent = due
      ? this.traced(span, this.untilStopped(this.schedule(encoded, due), what))
      : this.traced(
          span,
          this.untilStopped(this.sends.add(sendGroup(this.appId, recipient), encoded), what),
        ).then(() => this.emitSent(env));
    sent.catch((err: unknown) => this.asks.fail(env.id, err instanceof Error ? err : new Error(String(err))));
    return outcome;
  }

  /**
   * The due time of a send with `delayMs` or `at` (checked by checkSendOptions), on Redis' clock,
   * or null when it is to be sent at once (no option, a delay of 0, a time not in the future).
   * Stamps `env` with it: a scheduled message's `timestamp` is its due time, so its `timeout`
   * counts from the due time (not from when it reaches the inbox) and it ranks in FIFO order by
   * due time.
   */
  private dueTime(
    options: { delayMs?: number; at?: Date | number },
    env: Envelope,
  ): { dueMs: number; delayMs: number } | null {
    let dueUs: number;
    if (options.delayMs !== undefined && options.delayMs > 0) {
      dueUs = Math.round(env.timestamp * 1e6) + Math.round(options.delayMs * 1000);
    } else if (options.at !== undefined) {
      const atMs = options.at instanceof Date ? options.at.getTime() : options.at;
      if (atMs <= env.timestamp * 1000) return null;
      dueUs = Math.round(atMs * 1000);
    } else {
      return null;
    }
    env.timestamp = dueUs / 1e6;
    // Whole ms, rounded up: Redis' TIME at or past it is at or past the due time.
    const dueMs = Math.ceil(dueUs / 1000);
    return { dueMs, delayMs: Math.max(0, dueMs - this.clock.nowMs()) };
  }

  /**
   * Writes a scheduled message (Mailbox.schedule) and indexes it for the schedulers; a duplicate
   * id (already scheduled, pending, running or done) is not scheduled again.
   */
  private async schedule(encoded: EncodedMessage, due: { dueMs: number; delayMs: number }): Promise<void> {
    const env = encoded.envelope;
    // Indexed before and after: a sender that dies between the two writes still leaves an
    // index entry at or before the due time (src/scheduler.ts, "the index protocol").
    await this.scheduler.preindex(env.recipient, due.dueMs);
    const outcome = await this.mailbox.schedule(encoded, due.dueMs);
    if (outcome === "duplicate") {
      this.log.debug(
        { msgId: env.id, recipient: env.recipient },
        "not scheduled again: this id is already scheduled, pending, running or done",
      );
      return;
    }
    await this.scheduler.indexed(env.recipient, due.dueMs);
    this.remember(env);
    const { id, sender, recipient, message_type: type, priority } = env;
    this.events.emit("message.scheduled", { id, sender, recipient, type, priority, dueMs: due.dueMs });
  }

  /**
   * The scheduled send's path above, for an encoded message due at `dueMs` (whole ms, Redis'
   * clock): an actor timer's reminder (src/timers.ts, ActorTimers.remind; TimerHost).
   * @throws RedisCommandError when Redis refuses a write.
   */
  scheduleMessage(encoded: EncodedMessage, dueMs: number): Promise<void> {
    return this.schedule(encoded, { dueMs, delayMs: Math.max(0, dueMs - this.clock.nowMs()) });
  }

  /**
   * `work` (a send, or a spawn with `inFlight` = the spawns), settled by its own outcome or,
   * whichever comes first, rejected with SystemStoppedError when shutdown gives up on it.
   */
  private untilStopped<T>(
    work: Promise<T>,
    what: string,
    inFlight: Map<Promise<unknown>, () => void> = this.sendsInFlight,
  ): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      inFlight.set(work, () => reject(new SystemStoppedError(what)));
      work.then(resolve, reject).finally(() => inFlight.delete(work));
    });
  }

  /**
   * `work`, with `span` (tracing on) ended when it settles, its error recorded; `work` itself
   * when tracing is off.
   */
  private traced<T>(span: OpenSpan | undefined, work: Promise<T>): Promise<T> {
    return span && this.tracing ? this.tracing.settle(span, work) : work;
  }

  /** With whenDisconnected "fail", refuses to queue a send while Redis is unreachable. */
  private checkConnected(what: string): void {
    if (!this.failWhenDisconnected || this.cmd.status === "ready") return;
    throw new RedisUnavailableError(
      `cannot ${what}: the Redis connection is down (${this.cmd.status}) and whenDisconnected is "fail"; ` +
        'retry later, or use whenDisconnected: "queue" to send once it is back',
    );
  }

  sent(env: Envelope): void {
    this.emitSent(env);
  }

  private emitSent(env: Envelope): void {
    this.remember(env);
    if (!this.events.has("message.sent")) return;
    const { id, sender, recipient, message_type: type, priority } = env;
    this.events.emit("message.sent", { id, sender, recipient, type, priority });
  }

  /** Remembers the recipient of a message sent (cluster layout), for messageStatus and cancel. */
  private remember(env: Envelope): void {
    if (!this.keys.hashTag) return;
    this.recipients.set(env.id, env.recipient);
    if (this.recipients.size > RECENT_SENDS)
      this.recipients.delete(this.recipients.keys().next().value as string);
  }

  async broadcast(type: string, payload: unknown, options: BroadcastOptions = {}): Promise<void> {
    const what = `broadcast "${type}"`;
    if (this.stopping) throw new SystemStoppedError(what);
    const env = createEnvelope(
      { sender: this.appId, recipient: "broadcast", type, payload, ...options },
      this.clock,
    );
    await this.untilStopped(this.cmd.publish(this.keys.broadcastChannel(), encodeEnvelope(env)), what);
  }

  /** A reply pushed whole: settles its ask now; the inbox copy is consumed later as a late reply. */
  private onPushedReply(text: string): void {
    try {
      this.asks.offerPushed(decodeEnvelope(text));
    } catch {
      // Not a message: the inbox copy, or the ask's timeout, settles things.
    }
  }

  private onBroadcast(text: string): void {
    let message: Envelope;
    try {
      message = decodeEnvelope(text);
    } catch (err) {
      this.log.debug({ error: (err as Error).message }, "ignored a broadcast that is not a message");
      return;
    }
    for (const cell of this.cells.values()) {
      if (cell.definition.broadcasts?.includes(message.message_type)) cell.deliverBroadcast(message);
    }
  }

  spawn<const D extends ChildSpec>(spec: D): Promise<SpawnedRef<D>>;
  async spawn(spec: ChildSpec): Promise<ActorRef | FamilyRef | SupervisorRef> {
    // The whole tree is checked before any of it starts.
    checkSpecTree(spec, (definition) =>
      isFamilyDefinition(definition)
        ? checkFamilyDefinition(definition, this.keys.idRules)
        : checkActorDefinition(definition, this.keys.idRules),
    );
    const name = isFamilyDefinition(spec) ? spec.family : spec.id;
    const what = `spawn "${name}"`;
    if (this.stopping) throw new SystemStoppedError(what);
    const started = this.root.add(spec).then(async (child) => {
      if (!this.treeStopped) return child;
      // Started after shutdown stopped the tree (Redis was too slow): it is stopped too.
      await this.root.remove(child).catch(() => {});
      throw new SystemStoppedError(what);
    });
    const child = await this.untilStopped(started, what, this.spawning);
    if (isFamilyDefinition(spec)) {
      return {
        family: spec.family,
        ref: (key: string) => this.ref(`${spec.family}:${key}`),
        stop: () => this.root.remove(child),
      };
    }
    if (!isSupervisorSpec(spec)) return this.ref(spec.id);
    return {
      id: spec.id,
      get actorIds() {
        return child.actorIds;
      },
      stop: () => this.root.remove(child),
    };
  }

  familyChild(definition: FamilyDefinition): Child {
    const name = definition.family;
    // `drone` serves `drone:<key>`: a family `drone:x` would serve some of the same ids.
    for (const other of this.families.keys()) {
      if (other === name || name.startsWith(`${other}:`) || other.startsWith(`${name}:`)) {
        throw new DuplicateActorError(
          name,
          `family "${name}" would serve app ids that family "${other}" serves already in this system`,
        );
      }
    }
    const pool = new FamilyPool(this, definition);
    this.families.set(name, pool);
    return pool;
  }

  familyStopped(pool: FamilyPool): void {
    if (this.families.get(pool.id) === pool) this.families.delete(pool.id);
  }

  get redis(): RedisClient {
    return this.cmd;
  }

  get heartbeatKey(): string {
    return this.presence.heartbeatKey;
  }

  hasCell(app: string): boolean {
    return this.cells.has(app);
  }

  actorChild(definition: ActorDefinition, parent: ExitListener): Child {
    return new ActorChild(this, definition, parent);
  }

  /**
   * Tries to make this process the owner of single-activation actor `id`: `owner` null when it
   * is (`previous` names the dead owner it took over from), else the live owner's node id.
   * @throws DuplicateActorError when this system already runs or stands by for `id`.
   */
  async acquire(id: string): Promise<{ owner: string | null; previous: string }> {
    if (this.cells.has(id) || this.activations.standingBy().includes(id)) throw new DuplicateActorError(id);
    return this.activations.acquire(id);
  }

  /**
   * Refuses to spawn `id` with another activation mode than the live processes that run it: a
   * shared consumer next to a single-activation owner (or the reverse) would break the owner's
   * guarantee, as shared claims are not fenced.
   * @throws ActivationConflictError
   */
  async checkActivationMode(id: string, single: boolean): Promise<void> {
    // Presence first: an owner takes the key before it announces itself, so a process listed
    // here with no key read after it is a shared consumer.
    const serving = single ? ((await this.status(id))?.nodes ?? []) : [];
    const owner = await this.cmd.get(this.keys.activation(id));
    const ownerAlive =
      owner !== null && owner !== this.nodeId && (await this.cmd.exists(this.keys.heartbeat(owner))) === 1;
    if (!single && ownerAlive) {
      throw new ActivationConflictError(id, `runs with a single activation in process ${owner}`);
    }
    if (single && owner === null) {
      const others = serving.filter((node) => node !== this.nodeId);
      if (others.length > 0) {
        throw new ActivationConflictError(id, `is consumed with activation "shared" by ${others.join(", ")}`);
      }
    }
  }

  /** Gives up ownership of `id`, bounded by `deadlineMs` (+1 s): Redis may be unreachable. */
  async releaseActivation(id: string, deadlineMs: number): Promise<void> {
    this.activations.cancel(id);
    await settledBefore(
      this.activations.release(id).catch(() => {}),
      Math.max(deadlineMs, Date.now()) + 1000,
    );
  }

  /** Returns to `app`'s inbox what the process it was taken over from (`previous`) held. */
  async recoverFrom(app: string, previous: string): Promise<void> {
    await this.mailbox.recover(app, this.nodeId, [previous]).catch(() => {
      // The sweep does it within sweepMs.
    });
  }

  /**
   * Starts a cell for `definition` and makes it reachable; rejects if its setup fails. With
   * `owned`, its claims are fenced by this process's ownership (single activation); without
   * `subscribe` (a family instance, whose pool listens for it) no channel of its own is subscribed.
   */
  async startCell(
    definition: ActorDefinition,
    exits?: CellOptions["exits"],
    owned = false,
    subscribe = true,
  ): Promise<ActorCell> {
    const { id } = definition;
    if (this.cells.has(id)) throw new DuplicateActorError(id);
    const isSystemInbox = id === this.appId;
    // An actor with the system's own id takes over its inbox; ask replies are still taken first.
    const cell = new ActorCell(this, definition, {
      intercept: isSystemInbox ? this.takeReply : undefined,
      exits,
      leaseMs: this.mailbox.config.leaseMs,
      confirmMs: this.leaseConfirmMs,
      owner: owned ? this.nodeId : undefined,
    });
    this.cells.set(id, cell);
    try {
      if (isSystemInbox && this.systemCell) {
        await this.systemCell.stop(Date.now() + this.shutdownTimeoutMs);
        this.systemCell = undefined;
      }
      // Subscribed before it starts: its first claim then covers anything sent before that.
      await this.wakeups.watch(id, cell, { subscribe });
      await cell.start();
    } catch (err) {
      this.cells.delete(id);
      this.wakeups.unwatch(id);
      if (isSystemInbox) await this.startSystemCell();
      throw err;
    }
    // The cell serves already: a presence write that fails (Redis down) must not leave it
    // running unsupervised; the presence repair announces it within a heartbeat.
    await this.presence.online(id).catch((err: unknown) => {
      this.log.warn({ err, actor: id }, "could not announce the actor's presence yet; it will be retried");
    });
    // The types it handles, for tools (inspect, dlq retry); written again with its presence.
    // Sent after it on the same connection, the PERSIST of its status and outbox takes back a
    // TTL that a process with this id as appId gave them: an actor's keys never expire.
    await Promise.all([
      this.presence
        .markHandles(id, handlesField(Object.keys(definition.handlers), definition.fallback !== undefined))
        .catch(() => {}),
      claimActorKeys(this.cmd, this.keys, id).catch(() => {}),
    ]);
    this.events.emit("actor.started", { actor: id });
    this.log.info({ actor: id }, "actor started");
    return cell;
  }

  /**
   * Takes a cell out of service (it has stopped or is being stopped): no more wake-ups, and its
   * presence goes offline until a restart, if any, announces it again.
   */
  async retireCell(cell: ActorCell, reason: string): Promise<void> {
    if (this.cells.get(cell.id) === cell) this.cells.delete(cell.id);
    this.wakeups.unwatch(cell.id);
    this.events.emit("actor.stopped", { actor: cell.id, reason });
    this.log.info({ actor: cell.id, reason }, "actor stopped");
    if (cell.id === this.appId && !this.stopping) {
      await this.startSystemCell();
      return;
    }
    // At shutdown every actor leaves in one script call instead.
    if (!this.stopping) await this.presence.offline(cell.id).catch(() => {});
  }

  /** The system's own inbox, served for ask replies while no user actor has the system's id. */
  private async startSystemCell(): Promise<void> {
    const cell = new ActorCell(
      this,
      { id: this.appId, handlers: {} },
      { intercept: this.takeReply, leaseMs: this.mailbox.config.leaseMs, confirmMs: this.leaseConfirmMs },
    );
    await this.wakeups.watch(this.appId, cell);
    await cell.start();
    this.systemCell = cell;
    await this.presence.online(this.appId);
    await this.claimOwnKeys();
  }

  /**
   * Key hygiene (src/hygiene.ts): the system's own appId is marked `role system`, so that
   * `redactor gc` knows it for a process's app once the process is gone, unless it is (or was)
   * an actor's id (here or in another process: isActorApp); and its status and outbox lose the
   * TTL an earlier process's shutdown gave them.
   */
  private async claimOwnKeys(): Promise<void> {
    if (!(await isActorApp(this.cmd, this.keys, this.appId))) {
      await this.presence.markRole(this.appId, ROLE_SYSTEM);
    }
    await claimProcessKeys(this.cmd, this.keys, this.appId);
  }

  /**
   * Key hygiene at shutdown: when no other live process serves the system's appId (`offline`
   * lists it) and it is not an actor's id (an actor's keys never expire), its status and outbox
   * expire after LEFTOVER_TTL_S unless a process with that appId starts again (src/hygiene.ts).
   */
  private async expireOwnKeys(offline: readonly string[]): Promise<void> {
    if (!offline.includes(this.appId)) return;
    await expireProcessKeys(this.cmd, this.keys, this.appId).catch((err: unknown) => {
      this.log.warn({ err }, "could not give the system's status and outbox a TTL; redactor gc removes them");
    });
  }

  wakeLater(app: string, delayMs: number): void {
    this.hostClock.setTimeout(() => this.wakeups.wake(app), delayMs).unref();
  }

  restarted(info: SystemEvents["actor.restarted"]): void {
    // At info: the failure that caused it was logged (at error) where it happened.
    this.log.info(info, "restarting actor");
    this.events.emit("actor.restarted", info);
  }

  supervisorFailed(info: { supervisor: string; error: Error }): void {
    this.log.error({ supervisor: info.supervisor, err: info.error }, "supervisor gave up");
    this.events.emit("supervisor.failed", { supervisor: info.supervisor, error: info.error.message });
  }

  gaveUp(info: { supervisor: string; error: StateLoadError }): void {
    const actor = info.error.actorId;
    this.log.error(
      { actor, supervisor: info.supervisor, err: info.error, reason: info.error.reason },
      "cannot load the actor's saved state: it is stopped in this process, not restarted, and " +
        "its activation released (a process that can load the state may take it over); fix the " +
        "state or deploy a definition whose persist.migrate reads it, then spawn it again",
    );
    this.events.emit("actor.stopped", { actor, reason: "state-load" });
  }

  /** The root supervisor failed: nothing above it can help, so the system stops. */
  private rootFailed(error: Error): void {
    this.log.fatal({ err: error }, "root supervisor failed; stopping the system");
    this.events.emit("system.failed", { error: error.message });
    this.shutdown().catch((err: unknown) => {
      this.log.error({ err }, "shutting down after the root failure failed");
    });
  }

  async stop(id: string): Promise<void> {
    const found = this.root.find(id);
    if (found) await found.supervisor.remove(found.child);
  }

  actorIds(): string[] {
    return [...this.cells.keys()];
  }

  async messageStatus(id: string, recipient?: string): Promise<MessageStatus | null> {
    const key = await this.messageKey(id, recipient);
    return key === null ? null : ((await this.cmd.hget(key, "status")) as MessageStatus | null);
  }

  /**
   * The key of message `id`'s hash: `message:<id>`; in the cluster layout
   * `message:{recipient}:<id>`, with the recipient given, else known from a recent send, else
   * found by a SCAN of every master (null when none is found).
   */
  private async messageKey(id: string, recipient?: string): Promise<string | null> {
    if (!this.keys.hashTag) return this.keys.message("", id);
    const to = recipient ?? this.recipients.get(id);
    if (to !== undefined) return this.keys.message(to, id);
    const [key] = await scanAll(this.cmd, this.keys.messagePattern(id));
    return key ?? null;
  }

  async cancel(id: string, recipient?: string): Promise<boolean> {
    if (typeof id !== "string" || id === "") {
      throw new InvalidOptionError(
        "id",
        id,
        "cancel(id): id must be the non-empty id that tell or ask returned",
      );
    }
    if (recipient !== undefined) this.keys.checkApp(recipient, "recipient");
    const key = await this.messageKey(id, recipient);
    if (key === null) return false;
    // Its recipient names its scheduled set: given, read off the cluster key, or its hash's field.
    const app = recipient ?? this.keys.appFromMessageKey(key, id) ?? (await this.cmd.hget(key, "recipient"));
    if (app === null) return false;
    // A scheduled ask's request names its asker, which fails at once once it is cancelled.
    const member = await this.cmd.hgetBuffer(key, "member");
    const outcome = await this.scheduler.cancel(app, id);
    if (outcome !== "cancelled") return false;
    this.events.emit("message.cancelled", { id, recipient: app });
    this.failCancelledAsk(id, app, member);
    return true;
  }

  /**
   * A scheduled ask was cancelled: its asker fails now with AskFailedError (reason `cancelled`)
   * rather than at its timeout. An ask of this system directly; an asker elsewhere (another
   * process, a peer) through an error reply to the request (src/error-replies.ts), sent as from
   * its recipient. A cancelled tell needs nothing.
   */
  private failCancelledAsk(id: string, recipient: string, member: Buffer | null): void {
    const detail = "the scheduled request was cancelled (system.cancel) before it was due";
    const local = this.asks.waiting(id);
    if (local) {
      this.asks.fail(id, new AskFailedError(local.recipient, local.messageType, id, "cancelled", detail));
      return;
    }
    const request = member && failedRequest(member);
    if (!request) return;
    let reply: EncodedMessage;
    try {
      const timestamp = this.clock.nowMicros() / 1e6;
      const type = `${request.messageType}_reply`;
      reply = this.mailbox.encode(errorReply(id, request, recipient, type, "cancelled", detail, timestamp));
    } catch (err) {
      this.log.warn({ msgId: id, err }, "could not build the error reply of a cancelled ask");
      return;
    }
    this.mailbox.send([reply], { push: true }).catch((err: unknown) => {
      this.log.warn(
        { msgId: id, err },
        "could not send the error reply of a cancelled ask; its asker times out",
      );
    });
  }

  status(app: string): Promise<AppStatus | null> {
    return readStatus(this.cmd, this.keys, app);
  }

  async listOnline(): Promise<string[]> {
    return (await scanStatuses(this.cmd, this.keys)).filter((s) => s.online).map((s) => s.app);
  }

  shutdown(): Promise<void> {
    this.stopping ??= this.doShutdown();
    return this.stopping;
  }

  private async doShutdown(): Promise<void> {
    const began = Date.now();
    const deadline = began + this.shutdownTimeoutMs;
    this.log.info({ appId: this.appId, node: this.nodeId }, "system stopping");
    // Spawns still starting finish first (within the deadline), so that they are stopped too.
    await settledBefore(Promise.allSettled([...this.spawning.keys()]), deadline);
    const ids = new Set([...this.cells.keys(), this.appId]);
    this.treeStopped = true;
    for (const abandon of this.spawning.values()) abandon();
    this.spawning.clear();
    try {
      await this.root.stop(deadline);
    } catch (err) {
      this.log.error({ err }, "stopping the actors failed; shutting down the rest");
    }
    this.activations.stop();
    this.asks.rejectAll(new SystemStoppedError("wait for a reply"));
    await this.settleSends(deadline);
    await this.systemCell?.stop(deadline);
    // A promotion in progress ends (bounded: Redis may be unreachable; an unfinished claim
    // expires and another process promotes those messages).
    await settledBefore(this.scheduler.stop(), Math.max(deadline, Date.now()) + 1000);
    this.wakeups.stop();
    this.clock.stop();
    // Offline unless another live process still serves an app; with Redis unreachable this would
    // wait forever: the heartbeat, stopped anyway, goes stale and says offline instead.
    const marked = settledBefore(
      this.presence
        .leave([...ids])
        .then((offline) => this.expireOwnKeys(offline))
        .then(() => this.presence.stop()),
      Math.max(deadline, Date.now()) + 1000,
    );
    if (!(await marked)) {
      this.log.warn("could not mark actors offline at shutdown; their heartbeat will go stale");
      await this.presence.halt();
    }
    this.cells.clear();
    // Closed on purpose from here: not a lost connection.
    for (const unwatch of this.unwatchConnections.splice(0)) unwatch();
    this.sub.disconnect();
    // QUIT lets the commands already sent finish; bounded, as a paused server never answers it.
    if (this.cmd.status === "ready") await settledBefore(this.cmd.quit(), Date.now() + 1000);
    this.cmd.disconnect();
    const durationMs = Date.now() - began;
    this.log.info({ appId: this.appId, node: this.nodeId, durationMs }, "system stopped");
    this.events.emit("system.stopped", { appId: this.appId, node: this.nodeId, durationMs });
    this.markStopped();
  }

  /**
   * Lets the sends still in flight finish while Redis is connected (until `deadline`), then
   * rejects the rest with SystemStoppedError: none is left unsettled.
   */
  private async settleSends(deadline: number): Promise<void> {
    if (this.sendsInFlight.size > 0 && this.cmd.status === "ready") {
      await settledBefore(Promise.allSettled([...this.sendsInFlight.keys()]), deadline);
    }
    for (const abandon of [...this.sendsInFlight.values()]) abandon();
    this.sendsInFlight.clear();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.shutdown();
  }
}

/** The supervised slot of one actor: a cell per incarnation. */
class ActorChild implements Child {
  readonly id: string;
  readonly restartType: Child["restartType"];
  private cell: ActorCell | undefined;
  generation = 0;
  private starting = false;
  /** Set by stop(): a start still in progress then stops what it started. */
  private stopped = false;
  private pendingExit: { cell: ActorCell; reason: ExitReason } | undefined;

  constructor(
    private readonly system: RedactorSystem,
    private readonly definition: ActorDefinition,
    private readonly parent: ExitListener,
  ) {
    this.id = definition.id;
    this.restartType = definition.restart ?? "permanent";
  }

  get actorIds(): string[] {
    return [this.id];
  }

  async start(): Promise<void> {
    this.generation += 1;
    this.stopped = false;
    this.starting = true;
    try {
      if (this.generation === 1) await this.system.checkActivationMode(this.id, this.single);
      if (this.single) {
        const { owner, previous } = await this.system.acquire(this.id);
        if (owner !== null) {
          this.standBy(owner);
          return;
        }
        if (previous !== "") {
          this.system.events.emit("actor.activated", { actor: this.id, previous });
          await this.system.recoverFrom(this.id, previous);
        }
      }
      this.cell = await this.startOwnedCell();
    } finally {
      this.starting = false;
    }
    if (this.stopped) {
      // stop() came while this incarnation was starting: it must not live on unsupervised.
      await this.stop(Date.now() + this.system.shutdownTimeoutMs);
      return;
    }
    // Its first messages may already have crashed it while start() was finishing.
    const pending = this.pendingExit;
    this.pendingExit = undefined;
    if (pending && pending.cell === this.cell) this.exitedInBackground(pending.cell, pending.reason);
  }

  /** Its cell ended itself after a handler failure (an older incarnation's report is ignored). */
  cellExited(cell: ActorCell, reason: ExitReason): void {
    if (this.starting) this.pendingExit = { cell, reason };
    else if (this.cell === cell) this.exitedInBackground(cell, reason);
  }

  /** `exited`, not awaited by anyone: its failure is logged, never left unhandled. */
  private exitedInBackground(cell: ActorCell, reason: ExitReason): void {
    this.exited(cell, reason).catch((err: unknown) => {
      this.system.log.error({ err, actor: this.id }, "taking a stopped actor out of service failed");
    });
  }

  private async exited(cell: ActorCell, reason: ExitReason): Promise<void> {
    this.cell = undefined;
    // The incarnation that ended: a restart of the whole group may come while this one retires.
    const generation = this.generation;
    try {
      await this.system.retireCell(cell, reason.kind);
      // Its supervisor may not restart it (temporary, transient, or it gives up): the key goes
      // now, so that a process standing by takes over; a restart here acquires it again. Not when
      // a restart of its group (one_for_all) already started a new incarnation meanwhile: that
      // one holds the key now (checked as the release is sent: both go on one connection).
      if (this.single && this.generation === generation && !this.cell && !this.starting) {
        await this.system.releaseActivation(this.id, Date.now() + this.system.shutdownTimeoutMs);
      }
    } finally {
      // Told even when retiring failed (Redis down): its supervisor still decides what comes next.
      this.parent.childExited(this, reason, generation);
    }
  }

  async stop(deadlineMs: number): Promise<void> {
    this.stopped = true;
    if (this.single) this.system.activations.cancel(this.id);
    const cell = this.cell;
    this.cell = undefined;
    if (cell) {
      await cell.stop(deadlineMs);
      await this.system.retireCell(cell, "stop");
    }
    // A process standing by takes over at its next try rather than after our heartbeat expires.
    if (this.single) await this.system.releaseActivation(this.id, deadlineMs);
  }

  /** True when at most one process may run this actor at a time (src/activation.ts). */
  private get single(): boolean {
    return this.definition.activation !== "shared";
  }

  /**
   * Starts a cell, this process owning the actor when it has a single activation; when its
   * setup fails, the ownership goes back so that another process may try.
   */
  private async startOwnedCell(): Promise<ActorCell> {
    try {
      return await this.system.startCell(this.definition, this, this.single);
    } catch (err) {
      if (this.single)
        await this.system.releaseActivation(this.id, Date.now() + this.system.shutdownTimeoutMs);
      throw err;
    }
  }

  /** Another live process owns the actor: stand by until this one can take it over. */
  private standBy(owner: string): void {
    this.system.log.info(
      { actor: this.id, owner },
      "another process runs this actor; standing by to take over",
    );
    this.system.events.emit("actor.standby", { actor: this.id, owner });
    const generation = this.generation;
    this.system.activations.standBy(this.id, (previous) => {
      this.takeOver(generation, previous).catch((err: unknown) => {
        this.system.log.error({ err, actor: this.id }, "taking the actor over failed");
      });
    });
  }

  /** This process became the owner while standing by: start the actor (a fresh setup). */
  private async takeOver(generation: number, previous: string): Promise<void> {
    if (this.stopped || generation !== this.generation || this.cell) {
      await this.system.releaseActivation(this.id, Date.now() + this.system.shutdownTimeoutMs);
      return;
    }
    this.system.log.info({ actor: this.id, previous }, "took the actor over");
    this.system.events.emit("actor.activated", { actor: this.id, previous });
    // What the previous owner held comes back now, not at the next sweep.
    if (previous !== "") await this.system.recoverFrom(this.id, previous);
    this.starting = true;
    try {
      this.cell = await this.startOwnedCell();
    } catch (err) {
      // A state it cannot load: given up here (startOwnedCell released the activation), so
      // that a process that can load it takes over instead of this one looping.
      this.parent.childExited(this, startFailure(err), generation);
      return;
    } finally {
      this.starting = false;
    }
    if (this.stopped) await this.stop(Date.now() + this.system.shutdownTimeoutMs);
    const pending = this.pendingExit;
    this.pendingExit = undefined;
    if (pending && pending.cell === this.cell) this.exitedInBackground(pending.cell, pending.reason);
  }

  /**
   * Its claim was refused: another process owns the actor now (this one was taken for dead).
   * The incarnation is taken out of service and this process stands by again.
   */
  cellFenced(cell: ActorCell): void {
    if (this.cell !== cell) return;
    this.cell = undefined;
    const generation = this.generation;
    void (async () => {
      await this.system.retireCell(cell, "fenced").catch(() => {});
      if (this.stopped || generation !== this.generation) return;
      const { owner } = await this.system.acquire(this.id);
      if (owner === null) {
        // The other owner let it go meanwhile: serve it again.
        await this.takeOver(generation, "");
        return;
      }
      this.system.log.warn({ actor: this.id, owner }, "another process took this actor over; standing by");
      this.system.events.emit("actor.deactivated", { actor: this.id, owner });
      this.standBy(owner);
    })().catch((err: unknown) => {
      this.system.log.error({ err, actor: this.id }, "standing by again failed");
    });
  }
}

/**
 * Checks every option of createSystem (type and range) before any connection is made.
 * @throws InvalidIdError for `appId`, InvalidOptionError for the others.
 */
function checkSystemOptions(options: SystemOptions): void {
  requireObject("createSystem options", options);
  checkObject("keyspace", options.keyspace, "{}");
  checkBoolean("keyspace.hashTag", options.keyspace?.hashTag, "false");
  if (options.appId === undefined) {
    throw new InvalidOptionError(
      "appId",
      undefined,
      "createSystem needs an appId: this process's app id, the sender of its messages and the inbox of " +
        'its ask replies, e.g. createSystem({ appId: "ground-control" })',
    );
  }
  checkCluster(options);
  checkId(options.appId, "appId", {
    hashTag: (options.keyspace?.hashTag ?? false) || clusterFrom(options) !== undefined,
  });
  // On a cluster REDIS_URL is not read, so it is not checked either.
  const redis = options.redis ?? (clusterFrom(options) ? undefined : process.env.REDIS_URL);
  if (typeof redis === "string") {
    if (!/^rediss?:\/\//.test(redis) && !redis.startsWith("/")) {
      const source = options.redis === undefined ? "REDIS_URL" : "redis";
      throw new InvalidOptionError(
        source,
        describeTarget(redis, redis),
        `invalid ${source === "redis" ? "option redis" : "REDIS_URL"}: "${describeTarget(redis, redis)}" is ` +
          "not a Redis URL; use redis://[user:password@]host:port[/db], rediss:// for TLS, or a unix socket path",
      );
    }
  } else {
    checkObject("redis", redis, "REDIS_URL, else redis://127.0.0.1:6379");
  }
  checkObject("logger", options.logger, "a pino logger");
  checkHostClock("clock", options.clock);
  const ms = { above: 0, max: MAX_TIMER_MS, unit: "ms" };
  checkNumber("claimBatch", options.claimBatch, { integer: true, min: 1 }, "64");
  checkNumber("heartbeatMs", options.heartbeatMs, ms, "2000");
  checkNumber("sweepMs", options.sweepMs, ms, "1000");
  checkNumber("askTimeoutMs", options.askTimeoutMs, ms, "5000");
  const orZero = { min: 0, max: MAX_TIMER_MS, unit: "ms" };
  checkNumber("shutdownTimeoutMs", options.shutdownTimeoutMs, orZero, "10000");
  const wholeMs = { integer: true, min: 1, max: MAX_TIMER_MS, unit: "ms" };
  checkNumber("leaseMs", options.leaseMs, wholeMs, "30000");
  const bytes = { integer: true, min: 1, unit: "bytes" };
  checkNumber("maxMessageBytes", options.maxMessageBytes, bytes, "1048576");
  const seconds = { integer: true, min: 1, unit: "seconds" };
  checkNumber("messageTtlSeconds", options.messageTtlSeconds, seconds, "86400");
  checkNumber("outboxCap", options.outboxCap, { integer: true, min: 0 }, "1000");
  checkObject("durability", options.durability, "{ replicas: 0 }");
  if (options.durability) {
    checkNumber("durability.replicas", options.durability.replicas, { integer: true, min: 0 }, "0");
    checkNumber("durability.timeoutMs", options.durability.timeoutMs, wholeMs, "1000");
  }
  checkObject("rootIntensity", options.rootIntensity, "{ maxRestarts: 10, withinMs: 60000 }");
  if (options.rootIntensity) {
    checkNumber("rootIntensity.maxRestarts", options.rootIntensity.maxRestarts, { integer: true, min: 0 });
    checkNumber("rootIntensity.withinMs", options.rootIntensity.withinMs, { above: 0, unit: "ms" });
  }
  checkOneOf("whenDisconnected", options.whenDisconnected, ["queue", "fail"], '"queue"');
  checkBoolean("keyspaceEvents", options.keyspaceEvents, "true");
  checkBoolean("requireNoEviction", options.requireNoEviction, "false");
  checkBoolean("handleSignals", options.handleSignals, "false");
  checkTracingOption(options.tracing);
}

/** Checks the `cluster` option (and REDIS_CLUSTER) against the others. */
function checkCluster(options: SystemOptions): void {
  checkObject("cluster", options.cluster, "none (one server)");
  if (options.cluster !== undefined && options.redis !== undefined) {
    throw new InvalidOptionError(
      "cluster",
      "with redis",
      "give either redis (one server) or cluster (a Redis Cluster), not both",
    );
  }
  const cluster = clusterFrom(options);
  if (cluster === undefined) return;
  const option = options.cluster === undefined ? "REDIS_CLUSTER" : "cluster.nodes";
  const { nodes } = cluster;
  if (!Array.isArray(nodes) || nodes.length === 0) {
    throw new InvalidOptionError(
      option,
      nodes,
      `${option} must list at least one node of the cluster, e.g. ` +
        (option === "REDIS_CLUSTER"
          ? "REDIS_CLUSTER=redis://10.0.0.1:7000,redis://10.0.0.2:7000"
          : '{ nodes: ["redis://10.0.0.1:7000"] }'),
    );
  }
  for (const node of nodes) checkClusterNode(option, node);
  if (options.keyspace?.hashTag === false) {
    throw new InvalidOptionError(
      "keyspace.hashTag",
      false,
      "a cluster needs the hash-tagged layout (every app's keys in one slot); leave keyspace.hashTag out or set it to true",
    );
  }
}

/**
 * Checks one startup node: a `redis://` or `rediss://` URL without a database (a cluster has
 * only database 0), a port, or `{ host, port }`.
 */
function checkClusterNode(option: string, node: unknown): void {
  const refuse = (why: string): never => {
    const shown = typeof node === "string" ? describeTarget(node, node) : node;
    throw new InvalidOptionError(
      option,
      shown,
      `${option}: ${why}; give each node as redis://[user:password@]host:port (rediss:// for TLS), a port, or { host, port }`,
    );
  };
  if (typeof node === "number") {
    if (!Number.isInteger(node) || node < 1 || node > 65535) refuse(`${node} is not a port`);
    return;
  }
  if (typeof node === "string") {
    const url = URL.canParse(node) ? new URL(node) : refuse(`"${describeTarget(node, node)}" is not a URL`);
    if (url.protocol !== "redis:" && url.protocol !== "rediss:")
      refuse("a node URL starts with redis:// or rediss://");
    if (url.pathname !== "" && url.pathname !== "/" && url.pathname !== "/0") {
      refuse(`a Redis Cluster has only database 0, not ${url.pathname.slice(1)}`);
    }
    return;
  }
  if (typeof node !== "object" || node === null) refuse(`${String(node)} is not a node`);
  const { host, port } = node as { host?: unknown; port?: unknown };
  if (host !== undefined && typeof host !== "string") refuse("host must be a string");
  if (
    port !== undefined &&
    (typeof port !== "number" || !Number.isInteger(port) || port < 1 || port > 65535)
  ) {
    refuse("port must be a whole number from 1 to 65535");
  }
}

/**
 * Connects to Redis and starts an actor system.
 * @throws InvalidIdError or InvalidOptionError for a bad option, before connecting;
 *   RedisUnavailableError (or its subclasses RedisAuthError, RedisTlsError,
 *   RedisMaxClientsError, RedisDatabaseError) when Redis cannot be used, naming the cause. When
 *   it throws, no connection and no timer is left behind.
 */
export async function createSystem(options: SystemOptions): Promise<ActorSystem> {
  checkSystemOptions(options);
  // Loaded before connecting: tracing asked for without @opentelemetry/api fails here.
  const tracing = await Tracing.load(options.tracing);
  const { spec, where } = connectionFrom(options);
  const cmd = createClient(spec, connectionName(options.appId));
  cmd.on("error", () => {
    // ioredis reconnects by itself; failures surface on the commands that need the connection.
  });
  await openClient(cmd, where);
  let sub: RedisClient | undefined;
  let system: RedactorSystem;
  try {
    sub = createClient(subscriberSpec(specOf(cmd, spec)), connectionName(options.appId, "sub"));
    sub.on("error", () => {});
    await openClient(sub, where);
    system = new RedactorSystem(options.appId, cmd, sub, spec, options, tracing);
    // A start that fails stops its own timers and heartbeat; the connections are dropped here.
    await system.start();
    system.announceStarted(where);
  } catch (err) {
    sub?.disconnect();
    cmd.disconnect();
    throw explainCommandFailure(err, where);
  }
  if (options.handleSignals) {
    const onSignal = (signal: NodeJS.Signals) => {
      system.log.info({ signal }, "shutting down");
      void system.shutdown().finally(() => process.exit(0));
    };
    process.once("SIGINT", onSignal);
    process.once("SIGTERM", onSignal);
  }
  return system;
}
