/**
 * Prometheus metrics for an actor system, built from its typed events (`system.events`), plus an
 * optional tiny `/metrics` HTTP endpoint. Counters and histograms are updated as events happen;
 * the queue gauges (inbox depth, in flight, dead letters) are read from Redis when scraped, for
 * the local actors only, so a scrape costs one pipelined round trip whatever the traffic (on a
 * Redis Cluster, one small pipeline per slot, that is per app in the cluster layout, sent
 * together).
 *
 * ```ts
 * const metrics = createMetrics(system);
 * app.get("/metrics", async (_req, res) => res.type(metrics.contentType).send(await metrics.metrics()));
 * // or: const server = await serveMetrics(metrics.registry, { port: 9464 });
 * ```
 */
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import type { ChainableCommander } from "ioredis";
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from "prom-client";
import { bySlot, type RedisClient } from "./cluster.js";
import { RedactorError } from "./errors.js";
import type { SystemEventName, SystemEvents } from "./events.js";
import { Keyspace } from "./keyspace.js";
import { Mailbox } from "./mailbox.js";
import { checkBoolean, checkNumber } from "./options.js";
import { type Priority, SCORE_BAND, SCORE_BASE, SCORE_EPOCH_US } from "./priority.js";
import type { ActorSystem } from "./system.js";

/** Metrics cannot be set up or served; the message says what to change. */
export class MetricsError extends RedactorError {
  override name = "MetricsError";
}

/** Options of `createMetrics`. */
export interface MetricsOptions {
  /**
   * Where the metrics are registered; pass your application's registry to expose them with
   * your own metrics.
   * @default a new Registry
   */
  registry?: Registry;
  /**
   * Prefix of every metric name.
   * @default "redactor_"
   */
  prefix?: string;
  /**
   * Buckets of the handler-duration histogram, seconds.
   * @default [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]
   */
  handlerBuckets?: number[];
  /**
   * Buckets of the ask-latency histogram, seconds.
   * @default [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]
   */
  askBuckets?: number[];
  /**
   * Connection the queue gauges read with: one server, or a Redis Cluster.
   * @default the system's own command connection
   */
  redis?: RedisClient;
  /**
   * Key layout of the queues, when `redis` is given.
   * @default the system's layout (the peers' layout when `redis` is given)
   */
  keyspace?: Keyspace;
  /**
   * Apps whose queues are measured besides the local actors and the system's own inbox, e.g. a
   * peer's; a function is called at each scrape.
   * @default [] (none)
   */
  apps?: readonly string[] | (() => readonly string[]);
  /**
   * Longest a scrape waits for Redis before it leaves the queue gauges out, ms.
   * @default 2000
   */
  queueReadTimeoutMs?: number;
  /**
   * Distinct `type` label values kept; later ones are counted as "other". Message types come
   * from the wire, so a peer must not be able to grow the number of series without bound.
   * @default 200
   */
  maxTypeLabels?: number;
  /**
   * Distinct `recipient` label values kept (sends, asks); later ones are counted as "other".
   * Recipients are whatever app ids the code sends to (a family's instances, ids from the
   * wire), so they are bounded like `type`.
   * @default 200
   */
  maxRecipientLabels?: number;
  /**
   * Also collect prom-client's process metrics (CPU, memory, event-loop lag, heap, handles),
   * with the same prefix, in the same registry (`collectDefaultMetrics`).
   * @default false
   */
  processMetrics?: boolean;
}

/** What `createMetrics` returns. */
export interface RedactorMetrics {
  /** The registry holding the metrics; mount it, or pass it to `serveMetrics`. */
  readonly registry: Registry;
  /** The Content-Type of `metrics()`. */
  readonly contentType: string;
  /** The registry's text exposition (queue gauges are read now). */
  metrics(): Promise<string>;
  /**
   * Whether the system is ready to work: started, not shutting down, and connected to Redis
   * (`ActorSystem.ready`). `/ready` of serveMetrics answers from it.
   */
  ready(): boolean;
  /** Stops following the system's events and removes these metrics from the registry. */
  close(): void;
}

const DEFAULT_BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

const PRIORITY_LABEL: Record<Priority, string> = { 1: "LOW", 2: "NORMAL", 3: "HIGH", 4: "CRITICAL" };

/**
 * The system's own connection and layout. ActorSystem does not expose them, so they are taken
 * from the implementation when it is the one this package builds.
 */
export function systemStore(system: ActorSystem): { redis: RedisClient; keys: Keyspace } | undefined {
  const inner = system as unknown as { mailbox?: unknown; keys?: unknown };
  if (inner.mailbox instanceof Mailbox && inner.keys instanceof Keyspace) {
    return { redis: inner.mailbox.redis, keys: inner.keys };
  }
  return undefined;
}

/**
 * Builds prom-client metrics from `system.events`:
 *
 * - `redactor_messages_sent_total{recipient,type,priority}`
 * - `redactor_messages_claimed_total{actor}`
 * - `redactor_messages_completed_total{actor,type}`
 * - `redactor_messages_failed_total{actor,type,reason}`
 * - `redactor_messages_timed_out_total{actor}`
 * - `redactor_messages_dead_lettered_total{actor,reason}` (handler errors, unknown types, bad
 *   payloads, and malformed or oversized members refused at claim as `reason="rejected"`)
 * - `redactor_handler_duration_seconds{actor,type}` (histogram)
 * - `redactor_ask_duration_seconds{recipient,type}` (histogram of replies received)
 * - `redactor_asks_timed_out_total{recipient,type}`
 * - `redactor_actor_starts_total{actor}`, `redactor_actor_stops_total{actor,reason}`,
 *   `redactor_actor_restarts_total{actor,supervisor}`, `redactor_supervisor_failures_total{supervisor}`
 * - `redactor_inbox_depth{app}`, `redactor_messages_in_flight{app}`, `redactor_dead_letters{app}`,
 *   `redactor_oldest_message_age_seconds{app}` (gauges read from Redis at scrape time for the
 *   local actors and the system's own inbox; the age is that of the oldest message waiting, 0
 *   when none waits)
 * - `redactor_actor_up{actor}`: 1 per local actor running now, 0 for one that stopped or stands
 *   by (single activation, another process owns it)
 * - with `processMetrics`, prom-client's process metrics (`redactor_process_cpu_seconds_total` …)
 *
 * `recipient` and `type` label values are bounded (`maxRecipientLabels`, `maxTypeLabels`).
 *
 * @throws MetricsError when a metric of the same name is already in `registry`;
 *   InvalidOptionError for a bad option.
 */
export function createMetrics(system: ActorSystem, options: MetricsOptions = {}): RedactorMetrics {
  checkNumber("maxTypeLabels", options.maxTypeLabels, { integer: true, min: 0 }, "200");
  checkNumber("maxRecipientLabels", options.maxRecipientLabels, { integer: true, min: 0 }, "200");
  checkNumber("queueReadTimeoutMs", options.queueReadTimeoutMs, { above: 0, unit: "ms" }, "2000");
  checkBoolean("processMetrics", options.processMetrics, "false");
  const registry = options.registry ?? new Registry();
  const prefix = options.prefix ?? "redactor_";
  const store = options.redis
    ? { redis: options.redis, keys: options.keyspace ?? new Keyspace() }
    : systemStore(system);
  if (!store) {
    throw new MetricsError(
      "cannot read queue sizes: this system does not expose its Redis connection; pass createMetrics(system, { redis })",
    );
  }
  const readTimeoutMs = options.queueReadTimeoutMs ?? 2000;
  // Messages are stamped with Redis' clock; their ages are measured on it too when known.
  const nowMs = systemClock(system) ?? (() => Date.now());
  const created: string[] = [];
  const metric = <M>(name: string, make: (config: { name: string; registers: Registry[] }) => M): M => {
    const full = `${prefix}${name}`;
    if (registry.getSingleMetric(full)) {
      throw new MetricsError(
        `metric ${full} is already registered; give each system its own registry or prefix (createMetrics(system, { prefix }))`,
      );
    }
    const m = make({ name: full, registers: [registry] });
    created.push(full);
    return m;
  };

  const sent = metric(
    "messages_sent_total",
    (c) =>
      new Counter({
        ...c,
        help: "Messages this system wrote to an inbox.",
        labelNames: ["recipient", "type", "priority"],
      }),
  );
  const claimed = metric(
    "messages_claimed_total",
    (c) =>
      new Counter({ ...c, help: "Messages claimed from an inbox by a local actor.", labelNames: ["actor"] }),
  );
  const completed = metric(
    "messages_completed_total",
    (c) => new Counter({ ...c, help: "Messages whose handler finished.", labelNames: ["actor", "type"] }),
  );
  const failed = metric(
    "messages_failed_total",
    (c) =>
      new Counter({
        ...c,
        help: "Failed attempts (handler errors, refusals), by reason; a retried message counts each failure.",
        labelNames: ["actor", "type", "reason"],
      }),
  );
  const timedOut = metric(
    "messages_timed_out_total",
    (c) =>
      new Counter({
        ...c,
        help: "Messages whose deadline passed before they started.",
        labelNames: ["actor"],
      }),
  );
  const deadLettered = metric(
    "messages_dead_lettered_total",
    (c) =>
      new Counter({ ...c, help: "Messages moved to queue:<app>:dead.", labelNames: ["actor", "reason"] }),
  );
  const handlerDuration = metric(
    "handler_duration_seconds",
    (c) =>
      new Histogram({
        ...c,
        help: "Time spent in handlers that completed.",
        labelNames: ["actor", "type"],
        buckets: options.handlerBuckets ?? DEFAULT_BUCKETS,
      }),
  );
  const askDuration = metric(
    "ask_duration_seconds",
    (c) =>
      new Histogram({
        ...c,
        help: "Time from sending a request to receiving its reply.",
        labelNames: ["recipient", "type"],
        buckets: options.askBuckets ?? DEFAULT_BUCKETS,
      }),
  );
  const askTimeouts = metric(
    "asks_timed_out_total",
    (c) => new Counter({ ...c, help: "Asks that got no reply in time.", labelNames: ["recipient", "type"] }),
  );
  const actorStarts = metric(
    "actor_starts_total",
    (c) => new Counter({ ...c, help: "Actor incarnations started.", labelNames: ["actor"] }),
  );
  const actorStops = metric(
    "actor_stops_total",
    (c) => new Counter({ ...c, help: "Actors stopped, by reason.", labelNames: ["actor", "reason"] }),
  );
  const actorRestarts = metric(
    "actor_restarts_total",
    (c) =>
      new Counter({
        ...c,
        help: "Actors restarted by their supervisor.",
        labelNames: ["actor", "supervisor"],
      }),
  );
  const supervisorFailures = metric(
    "supervisor_failures_total",
    (c) =>
      new Counter({
        ...c,
        help: "Supervisors that gave up (restart intensity exceeded or escalation).",
        labelNames: ["supervisor"],
      }),
  );

  // prom-client collects the queue gauges of one scrape concurrently; they share one pipelined
  // read (one per slot on a cluster) while it is in flight, and the next scrape reads afresh.
  let pending: Promise<Map<string, QueueReading>> | undefined;
  const readQueues = (): Promise<Map<string, QueueReading>> => {
    if (pending) return pending;
    const extra = typeof options.apps === "function" ? options.apps() : (options.apps ?? []);
    const apps = [...new Set([system.appId, ...system.actorIds(), ...extra])];
    const { redis, keys } = store;
    const counts = Promise.race([
      readQueueSizes(redis, keys, apps, nowMs),
      new Promise<never>((_, reject) =>
        setTimeout(
          () => reject(new Error(`Redis did not answer within ${readTimeoutMs} ms`)),
          readTimeoutMs,
        ).unref(),
      ),
    ]);
    pending = counts;
    const clear = () => {
      pending = undefined;
    };
    counts.then(clear, clear);
    return counts;
  };
  let warned = false;
  const queueGauge = (name: string, help: string, read: (q: QueueReading) => number) =>
    metric(
      name,
      (c) =>
        new Gauge({
          ...c,
          help,
          labelNames: ["app"],
          async collect() {
            this.reset();
            try {
              for (const [app, reading] of await readQueues()) this.set({ app }, read(reading));
              warned = false;
            } catch (err) {
              // A scrape must not fail because Redis is away: the gauges are left out this time.
              if (!warned)
                system.log.warn({ err }, "metrics: cannot read queue sizes from Redis; gauges left out");
              warned = true;
            }
          },
        }),
    );
  queueGauge("inbox_depth", "Messages waiting in the inbox of each local actor.", (q) => q.inbox);
  queueGauge("messages_in_flight", "Messages claimed and not finished, per local actor.", (q) => q.inFlight);
  queueGauge("dead_letters", "Entries in queue:<app>:dead, per local actor.", (q) => q.dead);
  queueGauge(
    "oldest_message_age_seconds",
    "Age of the oldest message waiting in the inbox of each local actor (0 when none waits), seconds.",
    (q) => q.oldestAgeMs / 1000,
  );

  // Every local actor seen (running, stopped, standing by): 1 while it runs here, else 0. Those
  // not running are forgotten past MAX_REMEMBERED_ACTORS, oldest first.
  const actors = new Set<string>();
  const remember = (actor: string) => {
    actors.delete(actor);
    actors.add(actor);
    if (actors.size <= MAX_REMEMBERED_ACTORS) return;
    const running = new Set(system.actorIds());
    for (const old of actors) {
      if (actors.size <= MAX_REMEMBERED_ACTORS) break;
      if (!running.has(old)) actors.delete(old);
    }
  };
  metric(
    "actor_up",
    (c) =>
      new Gauge({
        ...c,
        help: "1 per local actor running in this process, 0 for one stopped or standing by.",
        labelNames: ["actor"],
        collect() {
          this.reset();
          const running = new Set(system.actorIds());
          for (const actor of running) remember(actor);
          for (const actor of actors) this.set({ actor }, running.has(actor) ? 1 : 0);
        },
      }),
  );

  const typeLabel = boundedLabel(options.maxTypeLabels ?? 200);
  const recipientLabel = boundedLabel(options.maxRecipientLabels ?? 200);

  const listeners: { [E in SystemEventName]?: (data: SystemEvents[E]) => void } = {
    "message.sent": (e) =>
      sent.inc({
        recipient: recipientLabel(e.recipient),
        type: typeLabel(e.type),
        priority: PRIORITY_LABEL[e.priority] ?? String(e.priority),
      }),
    "message.claimed": (e) => claimed.inc({ actor: e.actor }, e.count),
    "message.completed": (e) => {
      const type = typeLabel(e.type);
      completed.inc({ actor: e.actor, type });
      handlerDuration.observe({ actor: e.actor, type }, e.durationMs / 1000);
    },
    "message.failed": (e) => {
      failed.inc({ actor: e.actor, type: typeLabel(e.type), reason: e.reason });
      if (e.deadLettered) deadLettered.inc({ actor: e.actor, reason: e.reason });
    },
    "message.timeout": (e) => timedOut.inc({ actor: e.actor }),
    "message.rejected": (e) => deadLettered.inc({ actor: e.actor, reason: "rejected" }, e.count),
    "ask.replied": (e) =>
      askDuration.observe(
        { recipient: recipientLabel(e.recipient), type: typeLabel(e.type) },
        e.latencyMs / 1000,
      ),
    "ask.timeout": (e) =>
      askTimeouts.inc({ recipient: recipientLabel(e.recipient), type: typeLabel(e.type) }),
    "actor.started": (e) => {
      remember(e.actor);
      actorStarts.inc({ actor: e.actor });
    },
    "actor.stopped": (e) => {
      remember(e.actor);
      actorStops.inc({ actor: e.actor, reason: e.reason });
    },
    "actor.standby": (e) => remember(e.actor),
    "actor.deactivated": (e) => remember(e.actor),
    "actor.restarted": (e) => actorRestarts.inc({ actor: e.actor, supervisor: e.supervisor }),
    "supervisor.failed": (e) => supervisorFailures.inc({ supervisor: e.supervisor }),
  };
  const subscribe = (on: boolean) => {
    for (const [event, listener] of Object.entries(listeners)) {
      const name = event as SystemEventName;
      if (on) system.events.on(name, listener as never);
      else system.events.off(name, listener as never);
    }
  };
  subscribe(true);

  if (options.processMetrics) {
    const before = new Set(registry.getMetricsAsArray().map((m) => m.name));
    try {
      collectDefaultMetrics({ register: registry, prefix });
    } catch (err) {
      throw new MetricsError(
        `cannot add the process metrics: ${(err as Error).message}; collect them once per registry ` +
          "(processMetrics on one createMetrics only, or a prefix of its own)",
        { cause: err },
      );
    }
    for (const m of registry.getMetricsAsArray()) if (!before.has(m.name)) created.push(m.name);
  }

  return {
    registry,
    contentType: registry.contentType,
    metrics: () => registry.metrics(),
    ready: () => system.ready,
    close() {
      subscribe(false);
      for (const name of created) registry.removeSingleMetric(name);
      created.length = 0;
    },
  };
}

/** Actors not running any more that the actor-up gauge still reports (0), at most. */
const MAX_REMEMBERED_ACTORS = 1000;

/** What a scrape reads of one app's queues. */
interface QueueReading {
  inbox: number;
  inFlight: number;
  dead: number;
  /** Age of the oldest waiting message, ms (0 when none waits). */
  oldestAgeMs: number;
}

/**
 * Label values as they come, up to `max` distinct ones; later ones become "other", so that the
 * wire cannot grow the number of series without bound.
 */
function boundedLabel(max: number): (value: string) => string {
  const seen = new Set<string>();
  return (value) => {
    if (seen.has(value)) return value;
    if (seen.size >= max) return "other";
    seen.add(value);
    return value;
  };
}

/** Redis' clock of this package's system (ms since the epoch), when it is one. */
function systemClock(system: ActorSystem): (() => number) | undefined {
  const clock = (system as unknown as { clock?: { nowMs?: unknown } }).clock;
  if (clock && typeof clock.nowMs === "function") {
    const read = clock.nowMs as () => number;
    return () => read.call(clock);
  }
  return undefined;
}

/** The four priority bands of the canonical inbox score, as [min, max] (src/priority.ts). */
const BANDS = [0, 1, 2, 3].map((b) => [SCORE_BASE + b * SCORE_BAND, SCORE_BASE + (b + 1) * SCORE_BAND - 1]);

/**
 * Reads, for each app, its inbox, in-flight and dead-letter sizes (ZCARD) and the age of its
 * oldest waiting message: within a priority the oldest message has the highest canonical score,
 * so it is the head of its band (one ZREVRANGEBYSCORE … LIMIT 0 1 per band, its timestamp read
 * off the score); a member a peer scored (below the band) is re-scored only when claimed, so
 * the lowest of those is read too and its `timestamp` field parsed (read only). Nine commands
 * per app, pipelined: one pipeline on one server, one per slot on a cluster, sent together.
 * Rejects with the first error a command got (e.g. WRONGTYPE).
 */
async function readQueueSizes(
  redis: RedisClient,
  keys: Keyspace,
  apps: readonly string[],
  nowMs: () => number,
): Promise<Map<string, QueueReading>> {
  type Task = { key: string; add: (p: ChainableCommander) => void };
  const tasks: Task[] = apps.flatMap((app): Task[] => {
    const inbox = keys.inbox(app);
    return [
      { key: inbox, add: (p) => p.zcard(inbox) },
      { key: keys.processing(app), add: (p) => p.zcard(keys.processing(app)) },
      { key: keys.dead(app), add: (p) => p.zcard(keys.dead(app)) },
      ...BANDS.map(
        ([min, max]): Task => ({
          key: inbox,
          add: (p) => p.zrevrangebyscore(inbox, String(max), String(min), "WITHSCORES", "LIMIT", 0, 1),
        }),
      ),
      {
        key: inbox,
        add: (p) => p.zrangebyscore(inbox, "-inf", `(${SCORE_BASE}`, "WITHSCORES", "LIMIT", 0, 1),
      },
      // Scores above the band (a peer's +inf or huge score) are re-scored at claim too.
      {
        key: inbox,
        add: (p) => p.zrangebyscore(inbox, `(${2 ** 53 - 1}`, "+inf", "WITHSCORES", "LIMIT", 0, 1),
      },
    ];
  });
  const replies: unknown[] = new Array(tasks.length);
  const positions = tasks.map((_, i) => i);
  await Promise.all(
    bySlot(redis, positions, (i) => (tasks[i] as Task).key).map(async (group) => {
      const pipeline = redis.pipeline();
      for (const i of group) (tasks[i] as Task).add(pipeline);
      for (const [j, [err, reply]] of ((await pipeline.exec()) ?? []).entries()) {
        if (err) throw err;
        replies[group[j] as number] = reply;
      }
    }),
  );
  const now = nowMs();
  const PER_APP = 9;
  return new Map(
    apps.map((app, a): [string, QueueReading] => {
      const at = (k: number) => replies[a * PER_APP + k];
      let oldestUs = Number.POSITIVE_INFINITY;
      for (let b = 0; b < 4; b++) {
        const [, score] = (at(3 + b) as string[] | undefined) ?? [];
        if (score === undefined) continue;
        const rel = SCORE_BAND - 1 - (Number(score) - SCORE_BASE - b * SCORE_BAND);
        oldestUs = Math.min(oldestUs, rel + SCORE_EPOCH_US);
      }
      for (const k of [7, 8]) {
        const [member] = (at(k) as string[] | undefined) ?? [];
        const seconds = member === undefined ? undefined : timestampOf(member);
        if (seconds !== undefined) oldestUs = Math.min(oldestUs, seconds * 1e6);
      }
      return [
        app,
        {
          inbox: Number(at(0) ?? 0),
          inFlight: Number(at(1) ?? 0),
          dead: Number(at(2) ?? 0),
          oldestAgeMs: Number.isFinite(oldestUs) ? Math.max(0, now - oldestUs / 1000) : 0,
        },
      ];
    }),
  );
}

/** The `timestamp` (Unix seconds) of a member a peer wrote, or undefined when it has none. */
function timestampOf(member: string): number | undefined {
  try {
    const { timestamp } = JSON.parse(member) as { timestamp?: unknown };
    return typeof timestamp === "number" && Number.isFinite(timestamp) ? timestamp : undefined;
  } catch {
    return undefined;
  }
}

/** Liveness path of serveMetrics: 200 while the process runs. */
const HEALTH_PATH = "/health";
/** Readiness path of serveMetrics: 200 when ready, 503 otherwise. */
const READY_PATH = "/ready";

/** Options of `serveMetrics`. */
export interface ServeMetricsOptions {
  /**
   * TCP port; 0 picks a free one (see `MetricsServer.port`).
   * @default 9464
   */
  port?: number;
  /**
   * Interface to listen on; use "0.0.0.0" so that a Prometheus server on another host can scrape.
   * @default "127.0.0.1"
   */
  host?: string;
  /**
   * Path of the endpoint.
   * @default "/metrics"
   */
  path?: string;
  /**
   * Whether the process is ready to work, for `/ready`: 200 when it returns true, 503 otherwise.
   * @default `createMetrics`' `ready()` (the system is started and connected to Redis) when the
   *   source is its result; with a bare Registry, none (`/ready` answers 503 and says why)
   */
  ready?: () => boolean | Promise<boolean>;
}

/** A running `/metrics` endpoint. */
export interface MetricsServer {
  /** `http://host:port/metrics`. */
  readonly url: string;
  readonly port: number;
  /** Stops listening and closes open connections. */
  close(): Promise<void>;
}

/**
 * Serves a registry (or `createMetrics`' result) over HTTP with `node:http`: GET `path` answers
 * the text exposition; GET `/health` answers 200 while the process runs (liveness); GET `/ready`
 * answers 200 when `ready()` says so (by default: the system is started and connected to
 * Redis), else 503 (readiness); anything else 404. Rejects with MetricsError when the port is
 * taken.
 */
export async function serveMetrics(
  source: Registry | (Pick<RedactorMetrics, "registry"> & Partial<Pick<RedactorMetrics, "ready">>),
  options: ServeMetricsOptions = {},
): Promise<MetricsServer> {
  const registry = source instanceof Registry ? source : source.registry;
  const ready = options.ready ?? (source instanceof Registry ? undefined : source.ready);
  const host = options.host ?? "127.0.0.1";
  const path = options.path ?? "/metrics";
  const text = (status: number, body: string, head: boolean) =>
    [status, { "Content-Type": "text/plain; charset=utf-8" }, head ? undefined : body] as const;
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? "/", "http://localhost");
    const readable = req.method === "GET" || req.method === "HEAD";
    const head = req.method === "HEAD";
    const answer = ([status, headers, body]: ReturnType<typeof text>) =>
      res.writeHead(status, headers).end(body);
    if (readable && url.pathname === HEALTH_PATH && url.pathname !== path) {
      answer(text(200, "ok\n", head));
      return;
    }
    if (readable && url.pathname === READY_PATH && url.pathname !== path) {
      if (!ready) {
        answer(
          text(
            503,
            "no readiness check: serve createMetrics' result, or pass serveMetrics(…, { ready })\n",
            head,
          ),
        );
        return;
      }
      Promise.resolve()
        .then(ready)
        .then(
          (ok) =>
            answer(
              ok
                ? text(200, "ready\n", head)
                : text(503, "not ready: not started, stopping, or not connected to Redis\n", head),
            ),
          (err: unknown) => answer(text(503, `not ready: ${(err as Error).message}\n`, head)),
        );
      return;
    }
    if (url.pathname !== path || !readable) {
      res
        .writeHead(404, { "Content-Type": "text/plain; charset=utf-8" })
        .end(`not found; metrics are at ${path}, liveness at ${HEALTH_PATH}, readiness at ${READY_PATH}\n`);
      return;
    }
    registry.metrics().then(
      (text) => {
        res
          .writeHead(200, { "Content-Type": registry.contentType })
          .end(req.method === "HEAD" ? undefined : text);
      },
      (err: unknown) => {
        res
          .writeHead(500, { "Content-Type": "text/plain; charset=utf-8" })
          .end(`${(err as Error).message}\n`);
      },
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", (err: NodeJS.ErrnoException) => {
      reject(
        new MetricsError(
          err.code === "EADDRINUSE"
            ? `port ${options.port ?? 9464} on ${host} is in use; choose another metrics port`
            : `cannot serve metrics on ${host}:${options.port ?? 9464}: ${err.message}`,
        ),
      );
    });
    server.listen(options.port ?? 9464, host, () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  const shownHost = host.includes(":") ? `[${host}]` : host;
  return {
    url: `http://${shownHost}:${port}${path}`,
    port,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
