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
import { Counter, Gauge, Histogram, Registry } from "prom-client";
import { perKey, type RedisClient } from "./cluster.js";
import { RedactorError } from "./errors.js";
import type { SystemEventName, SystemEvents } from "./events.js";
import { Keyspace } from "./keyspace.js";
import { Mailbox } from "./mailbox.js";
import type { Priority } from "./priority.js";
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
}

/** What `createMetrics` returns. */
export interface RedactorMetrics {
  /** The registry holding the metrics; mount it, or pass it to `serveMetrics`. */
  readonly registry: Registry;
  /** The Content-Type of `metrics()`. */
  readonly contentType: string;
  /** The registry's text exposition (queue gauges are read now). */
  metrics(): Promise<string>;
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
 * - `redactor_inbox_depth{app}`, `redactor_messages_in_flight{app}`, `redactor_dead_letters{app}`
 *   (gauges read from Redis at scrape time for the local actors and the system's own inbox)
 *
 * Throws MetricsError when a metric of the same name is already in `registry`.
 */
export function createMetrics(system: ActorSystem, options: MetricsOptions = {}): RedactorMetrics {
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

  // prom-client collects the three gauges of one scrape concurrently; they share one pipelined
  // read (one per slot on a cluster) while it is in flight, and the next scrape reads afresh.
  let pending: Promise<Map<string, [number, number, number]>> | undefined;
  const readQueues = (): Promise<Map<string, [number, number, number]>> => {
    if (pending) return pending;
    const extra = typeof options.apps === "function" ? options.apps() : (options.apps ?? []);
    const apps = [...new Set([system.appId, ...system.actorIds(), ...extra])];
    const { redis, keys } = store;
    const queueKeys = apps.flatMap((app) => [keys.inbox(app), keys.processing(app), keys.dead(app)]);
    const counts = Promise.race([
      zcardEach(redis, queueKeys),
      new Promise<never>((_, reject) =>
        setTimeout(
          () => reject(new Error(`Redis did not answer within ${readTimeoutMs} ms`)),
          readTimeoutMs,
        ).unref(),
      ),
    ]).then(
      (values) =>
        new Map(
          apps.map((app, i): [string, [number, number, number]] => [
            app,
            [values[i * 3] ?? 0, values[i * 3 + 1] ?? 0, values[i * 3 + 2] ?? 0],
          ]),
        ),
    );
    pending = counts;
    const clear = () => {
      pending = undefined;
    };
    counts.then(clear, clear);
    return counts;
  };
  let warned = false;
  const queueGauge = (name: string, help: string, index: 0 | 1 | 2) =>
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
              for (const [app, counts] of await readQueues()) this.set({ app }, counts[index]);
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
  queueGauge("inbox_depth", "Messages waiting in the inbox of each local actor.", 0);
  queueGauge("messages_in_flight", "Messages claimed and not finished, per local actor.", 1);
  queueGauge("dead_letters", "Entries in queue:<app>:dead, per local actor.", 2);

  const maxTypes = options.maxTypeLabels ?? 200;
  const seenTypes = new Set<string>();
  const typeLabel = (type: string): string => {
    if (seenTypes.has(type)) return type;
    if (seenTypes.size >= maxTypes) return "other";
    seenTypes.add(type);
    return type;
  };

  const listeners: { [E in SystemEventName]?: (data: SystemEvents[E]) => void } = {
    "message.sent": (e) =>
      sent.inc({
        recipient: e.recipient,
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
      askDuration.observe({ recipient: e.recipient, type: typeLabel(e.type) }, e.latencyMs / 1000),
    "ask.timeout": (e) => askTimeouts.inc({ recipient: e.recipient, type: typeLabel(e.type) }),
    "actor.started": (e) => actorStarts.inc({ actor: e.actor }),
    "actor.stopped": (e) => actorStops.inc({ actor: e.actor, reason: e.reason }),
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

  return {
    registry,
    contentType: registry.contentType,
    metrics: () => registry.metrics(),
    close() {
      subscribe(false);
      for (const name of created) registry.removeSingleMetric(name);
      created.length = 0;
    },
  };
}

/**
 * The size of each sorted set of `keys`, in their order (see perKey: one pipeline, or one per
 * slot on a cluster). Rejects with the first error a ZCARD got (e.g. WRONGTYPE).
 */
async function zcardEach(redis: RedisClient, keys: readonly string[]): Promise<number[]> {
  return (await perKey(redis, keys, (p, key) => p.zcard(key))).map(([err, v]) => {
    if (err) throw err;
    return Number(v ?? 0);
  });
}

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
 * the text exposition, anything else 404. Rejects with MetricsError when the port is taken.
 */
export async function serveMetrics(
  source: Registry | Pick<RedactorMetrics, "registry">,
  options: ServeMetricsOptions = {},
): Promise<MetricsServer> {
  const registry = source instanceof Registry ? source : source.registry;
  const host = options.host ?? "127.0.0.1";
  const path = options.path ?? "/metrics";
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? "/", "http://localhost");
    if (url.pathname !== path || (req.method !== "GET" && req.method !== "HEAD")) {
      res
        .writeHead(404, { "Content-Type": "text/plain; charset=utf-8" })
        .end(`not found; metrics are at ${path}\n`);
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
