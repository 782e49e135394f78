/**
 * Metrics: prom-client values after real traffic, the queue gauges (the oldest waiting message
 * too, on a server and a cluster), actors up, bounded labels, opt-in process metrics, and the
 * /metrics, /health and /ready endpoints.
 */
import { createServer } from "node:net";
import pino from "pino";
import { Registry } from "prom-client";
import { describe, expect, it } from "vitest";
import {
  createMetrics,
  createSystem,
  defineActor,
  InvalidOptionError,
  MetricsError,
  Priority,
  serveMetrics,
} from "../src/index.js";
import { canonicalScore } from "../src/priority.js";
import { describeBackends, MASTERS_ONLY, useBackendSystems } from "./harness/backends.js";
import { uniqueId, useRedis } from "./harness/redis.js";
import { startRedis } from "./harness/redis-server.js";
import { useSystems, waitFor } from "./harness/system.js";

const redis = useRedis();
const newSystem = useSystems(redis);

type Labels = Record<string, string | number>;

/** The value of one series (a histogram's `_count` with `suffix: "count"`), 0 when absent. */
async function value(
  registry: Registry,
  name: string,
  labels: Labels,
  suffix?: "count" | "sum",
): Promise<number> {
  const metric = registry.getSingleMetric(name);
  if (!metric) throw new Error(`no metric ${name}`);
  const { values } = await metric.get();
  const series = values.find(
    (v) =>
      (suffix === undefined || (v as { metricName?: string }).metricName === `${name}_${suffix}`) &&
      Object.entries(labels).every(([k, l]) => (v.labels as Labels)[k] === l),
  );
  return series?.value ?? 0;
}

type Echo = { ping: { payload: { n: number }; reply: { n: number } } };

describe("createMetrics", () => {
  it("counts sends, claims, completions, failures, dead letters, timeouts, rejections and asks", async () => {
    const system = await newSystem();
    const metrics = createMetrics(system);
    const { registry } = metrics;
    const echo = uniqueId("echo");
    const broken = uniqueId("broken");
    await system.spawn(defineActor<Echo>({ id: echo, handlers: { ping: async (p) => ({ n: p.n }) } }));
    await system.spawn(
      defineActor<{ work: { payload: Record<string, never> } }>({
        id: broken,
        maxAttempts: 2,
        onFailure: "resume",
        retryBackoff: { minMs: 5, maxMs: 5 },
        handlers: {
          work: async () => {
            throw new Error("no fuel");
          },
        },
      }),
    );

    const ref = system.ref<Echo>(echo);
    for (let n = 0; n < 3; n++)
      expect(await ref.ask("ping", { n }, { priority: Priority.HIGH })).toEqual({ n });
    await system.ref(broken).tell("work", {});
    await system.ref(broken).tell("nonsense", {});
    // A peer's late message (deadline long past) and a malformed member, added without redactor.
    const c = redis().client();
    const now = Date.now() / 1000;
    await c.zadd(
      `queue:${echo}:inbox`,
      3000 + now,
      JSON.stringify({
        id: uniqueId("late"),
        sender: "cpp",
        recipient: echo,
        message_type: "ping",
        payload: { n: 9 },
        priority: 3,
        timestamp: now - 60,
        timeout: 1,
      }),
    );
    await c.zadd(`queue:${echo}:inbox`, 5, "{not json");
    await c.publish(`channel:${echo}`, "new_message:x");
    await expect(
      system.ref<Echo>(uniqueId("nobody")).ask("ping", { n: 1 }, { timeoutMs: 150 }),
    ).rejects.toThrow();

    await waitFor(
      async () =>
        (await value(registry, "redactor_messages_dead_lettered_total", {
          actor: broken,
          reason: "handler-error",
        })) === 1 &&
        (await value(registry, "redactor_messages_dead_lettered_total", {
          actor: echo,
          reason: "rejected",
        })) === 1 &&
        (await value(registry, "redactor_messages_timed_out_total", { actor: echo })) === 1,
      5000,
      "the failures to be counted",
    );
    expect(
      await value(registry, "redactor_messages_sent_total", {
        recipient: echo,
        type: "ping",
        priority: "HIGH",
      }),
    ).toBe(3);
    expect(
      await value(registry, "redactor_messages_sent_total", {
        recipient: broken,
        type: "work",
        priority: "NORMAL",
      }),
    ).toBe(1);
    expect(await value(registry, "redactor_messages_completed_total", { actor: echo, type: "ping" })).toBe(3);
    expect(await value(registry, "redactor_messages_claimed_total", { actor: echo })).toBeGreaterThanOrEqual(
      3,
    );
    // Two attempts of "work" failed (one retried, one dead-lettered); "nonsense" has no handler.
    expect(
      await value(registry, "redactor_messages_failed_total", {
        actor: broken,
        type: "work",
        reason: "handler-error",
      }),
    ).toBe(2);
    expect(
      await value(registry, "redactor_messages_failed_total", {
        actor: broken,
        type: "nonsense",
        reason: "unknown-type",
      }),
    ).toBe(1);
    expect(
      await value(registry, "redactor_messages_dead_lettered_total", {
        actor: broken,
        reason: "unknown-type",
      }),
    ).toBe(1);
    expect(
      await value(registry, "redactor_handler_duration_seconds", { actor: echo, type: "ping" }, "count"),
    ).toBe(3);
    expect(
      await value(registry, "redactor_ask_duration_seconds", { recipient: echo, type: "ping" }, "count"),
    ).toBe(3);
    expect(
      await value(registry, "redactor_ask_duration_seconds", { recipient: echo, type: "ping" }, "sum"),
    ).toBeGreaterThan(0);
    expect(await value(registry, "redactor_asks_timed_out_total", { type: "ping" })).toBe(1);
    expect(await value(registry, "redactor_actor_starts_total", { actor: echo })).toBe(1);
    expect(await value(registry, "redactor_dead_letters", { app: broken })).toBe(2);

    await system.stop(echo);
    expect(await value(registry, "redactor_actor_stops_total", { actor: echo, reason: "stop" })).toBe(1);
  });

  it("reads inbox depth and messages in flight per local actor at scrape time", async () => {
    const system = await newSystem();
    const { registry } = createMetrics(system);
    const slow = uniqueId("slow");
    let release!: () => void;
    const gate = new Promise<void>((r) => {
      release = r;
    });
    await system.spawn(
      defineActor<{ job: { payload: { n: number } } }>({
        id: slow,
        claimBatch: 1,
        handlers: { job: () => gate },
      }),
    );
    const ref = system.ref<{ job: { payload: { n: number } } }>(slow);
    for (let n = 0; n < 4; n++) await ref.tell("job", { n });
    await waitFor(
      async () => (await value(registry, "redactor_messages_in_flight", { app: slow })) === 1,
      3000,
      "a claim",
    );
    expect(await value(registry, "redactor_inbox_depth", { app: slow })).toBe(3);
    expect(await value(registry, "redactor_inbox_depth", { app: system.appId })).toBe(0);
    release();
    await waitFor(
      async () => (await value(registry, "redactor_inbox_depth", { app: slow })) === 0,
      3000,
      "the drain",
    );
    await system.stop(slow);
    // A stopped actor is no longer reported.
    const text = await registry.metrics();
    expect(text).toMatch(new RegExp(`^redactor_inbox_depth\\{app="${system.appId}"\\} 0$`, "m"));
    expect(text).not.toMatch(
      new RegExp(`^redactor_(inbox_depth|messages_in_flight|dead_letters)\\{app="${slow}"`, "m"),
    );
  });

  it("measures extra apps through a connection of one's own, and refuses duplicate registration", async () => {
    const system = await newSystem();
    const registry = new Registry();
    const peer = uniqueId("peer");
    const c = redis().client();
    await c.zadd(`queue:${peer}:inbox`, 3001, "{}");
    const metrics = createMetrics(system, { registry, redis: c, apps: () => [peer] });
    expect(await value(registry, "redactor_inbox_depth", { app: peer })).toBe(1);
    expect(() => createMetrics(system, { registry })).toThrow(MetricsError);
    const other = createMetrics(system, { registry, prefix: "drone_" });
    expect(registry.getSingleMetric("drone_messages_sent_total")).toBeDefined();
    other.close();
    expect(registry.getSingleMetric("drone_messages_sent_total")).toBeUndefined();
    // Closed metrics no longer follow the system's events.
    metrics.close();
    await system.ref(peer).tell("x", {});
    expect(registry.getSingleMetric("redactor_messages_sent_total")).toBeUndefined();
  });

  it("leaves the queue gauges out, without failing the scrape, when Redis does not answer", async () => {
    const system = await newSystem();
    const c = redis().client();
    const metrics = createMetrics(system, { redis: c, queueReadTimeoutMs: 100 });
    c.disconnect();
    const text = await metrics.metrics();
    expect(text).toContain("redactor_messages_sent_total");
    expect(text).not.toMatch(/^redactor_inbox_depth\{/m);
  });
});

describe("serveMetrics", () => {
  it("serves the registry at /metrics and 404 elsewhere", async () => {
    const system = await newSystem();
    const metrics = createMetrics(system);
    const echo = uniqueId("echo");
    await system.spawn(defineActor<Echo>({ id: echo, handlers: { ping: (p) => ({ n: p.n }) } }));
    await system.ref<Echo>(echo).ask("ping", { n: 1 });
    const server = await serveMetrics(metrics, { port: 0 });
    try {
      expect(server.url).toBe(`http://127.0.0.1:${server.port}/metrics`);
      const res = await fetch(server.url);
      expect(res.status).toBe(200);
      expect(res.headers.get("content-type")).toBe(metrics.contentType);
      const text = await res.text();
      expect(text).toContain("# TYPE redactor_handler_duration_seconds histogram");
      expect(text).toContain(`redactor_messages_completed_total{actor="${echo}",type="ping"} 1`);
      expect(text).toContain(`redactor_inbox_depth{app="${echo}"} 0`);
      const missing = await fetch(server.url.replace("/metrics", "/"));
      expect(missing.status).toBe(404);
    } finally {
      await server.close();
    }
  });

  it("rejects with MetricsError when the port is taken", async () => {
    const blocker = createServer();
    await new Promise<void>((r) => blocker.listen(0, "127.0.0.1", r));
    const port = (blocker.address() as { port: number }).port;
    try {
      await expect(serveMetrics(new Registry(), { port })).rejects.toThrow(MetricsError);
      await expect(serveMetrics(new Registry(), { port })).rejects.toThrow(/in use/);
    } finally {
      blocker.close();
    }
  });

  it("bounds the type label: message types past maxTypeLabels count as other", async () => {
    const system = await newSystem();
    const app = uniqueId("spray");
    let handled = 0;
    await system.spawn(
      defineActor<{ a: { payload: object } }>({
        id: app,
        handlers: { a: () => {} },
        fallback: () => {
          handled += 1;
        },
      }),
    );
    const metrics = createMetrics(system, { maxTypeLabels: 2 });
    for (const type of ["a", "b", "c", "d"]) await system.ref(app).tell(type, {});
    await waitFor(() => handled === 3, 3000, "four messages");
    await waitFor(async () => (await metrics.metrics()).includes('type="other"} 2'), 2000, "other");
    const text = await metrics.metrics();
    expect(text).toContain(`redactor_messages_completed_total{actor="${app}",type="a"} 1`);
    expect(text).toContain(`redactor_messages_completed_total{actor="${app}",type="b"} 1`);
    expect(text).toContain(`redactor_messages_completed_total{actor="${app}",type="other"} 2`);
    metrics.close();
  });
});

describeBackends(
  "metrics: the oldest waiting message and actors up",
  (backend) => {
    const newBackendSystem = useBackendSystems(backend);

    it("reports the age of the oldest waiting message per inbox, every priority and peer scores included", async () => {
      const system = await newBackendSystem();
      const peer = uniqueId("aged");
      const metrics = createMetrics(system, { apps: [peer] });
      const { registry } = metrics;
      const c = backend().client();
      const inbox = backend().keys.inbox(peer);
      const member = (ageS: number, priority: number) =>
        JSON.stringify({
          id: uniqueId("m"),
          sender: "petal-app-manager",
          recipient: peer,
          message_type: "x",
          payload: {},
          priority,
          timestamp: Date.now() / 1000 - ageS,
          reply_to: null,
          timeout: null,
        });
      const age = () => value(registry, "redactor_oldest_message_age_seconds", { app: peer });
      expect(await age()).toBe(0);
      const nowUs = Date.now() * 1000;
      // CRITICAL 5 s old runs first, but a LOW 60 s old waits longer.
      await c.zadd(inbox, canonicalScore(Priority.CRITICAL, nowUs - 5e6), member(5, 4));
      expect(await age()).toBeGreaterThanOrEqual(4);
      expect(await age()).toBeLessThan(30);
      await c.zadd(inbox, canonicalScore(Priority.LOW, nowUs - 60e6), member(60, 1));
      await c.zadd(inbox, canonicalScore(Priority.LOW, nowUs - 10e6), member(10, 1));
      expect(await age()).toBeGreaterThanOrEqual(59);
      expect(await age()).toBeLessThan(90);
      // A peer's ZADD (priority * 1000 + timestamp): its timestamp is read from the member.
      await c.zadd(inbox, 3000 + Date.now() / 1000 - 120, member(120, 3));
      expect(await age()).toBeGreaterThanOrEqual(119);
      expect(await age()).toBeLessThan(150);
      await c.del(inbox);
      expect(await age()).toBe(0);
      // One scrape, all queue gauges of every local app.
      const text = await metrics.metrics();
      expect(text).toMatch(
        new RegExp(`^redactor_oldest_message_age_seconds\\{app="${system.appId}"\\} 0$`, "m"),
      );
    });

    it("ages the inbox of a local actor that is busy, and reports actors up and down", async () => {
      const system = await newBackendSystem();
      const metrics = createMetrics(system);
      const { registry } = metrics;
      const busy = uniqueId("busy");
      let release!: () => void;
      const gate = new Promise<void>((r) => {
        release = r;
      });
      await system.spawn(
        defineActor<{ job: { payload: object } }>({ id: busy, claimBatch: 1, handlers: { job: () => gate } }),
      );
      expect(await value(registry, "redactor_actor_up", { actor: busy })).toBe(1);
      await system.ref(busy).tell("job", {});
      await system.ref(busy).tell("job", {});
      await waitFor(
        async () => (await value(registry, "redactor_messages_in_flight", { app: busy })) === 1,
        5000,
        "a claim",
      );
      await new Promise((r) => setTimeout(r, 600));
      const waited = await value(registry, "redactor_oldest_message_age_seconds", { app: busy });
      expect(waited).toBeGreaterThanOrEqual(0.5);
      expect(waited).toBeLessThan(10);
      release();
      await waitFor(
        async () => (await value(registry, "redactor_inbox_depth", { app: busy })) === 0,
        5000,
        "the drain",
      );
      expect(await value(registry, "redactor_oldest_message_age_seconds", { app: busy })).toBe(0);
      await system.stop(busy);
      const text = await metrics.metrics();
      expect(text).toMatch(new RegExp(`^redactor_actor_up\\{actor="${busy}"\\} 0$`, "m"));
      metrics.close();
    });
  },
  MASTERS_ONLY,
);

describe("metrics: bounded recipients, process metrics, health and readiness", () => {
  it("bounds the recipient label: recipients past maxRecipientLabels count as other", async () => {
    const system = await newSystem();
    const metrics = createMetrics(system, { maxRecipientLabels: 2 });
    const ids = [uniqueId("r"), uniqueId("r"), uniqueId("r"), uniqueId("r")];
    for (const id of ids) await system.ref(id).tell("ping", {});
    await expect(system.ref(ids[3] as string).ask("ping", {}, { timeoutMs: 50 })).rejects.toThrow();
    const text = await metrics.metrics();
    expect(text).toContain(
      `redactor_messages_sent_total{recipient="${ids[0]}",type="ping",priority="NORMAL"} 1`,
    );
    expect(text).toContain(
      `redactor_messages_sent_total{recipient="${ids[1]}",type="ping",priority="NORMAL"} 1`,
    );
    expect(text).toContain('redactor_messages_sent_total{recipient="other",type="ping",priority="NORMAL"} 3');
    expect(text).not.toContain(ids[2] as string);
    expect(text).toContain('redactor_asks_timed_out_total{recipient="other",type="ping"} 1');
    expect(() => createMetrics(system, { registry: new Registry(), maxRecipientLabels: -1 })).toThrow(
      InvalidOptionError,
    );
    metrics.close();
  });

  it("reports an actor standing by (single activation, owned by another process) as down", async () => {
    const owner = await newSystem();
    const other = await newSystem();
    const ownerMetrics = createMetrics(owner);
    const otherMetrics = createMetrics(other);
    const id = uniqueId("single");
    const definition = defineActor<{ x: { payload: object } }>({ id, handlers: { x: () => {} } });
    await owner.spawn(definition);
    await other.spawn(definition);
    expect(await value(ownerMetrics.registry, "redactor_actor_up", { actor: id })).toBe(1);
    const text = await otherMetrics.metrics();
    expect(text).toMatch(new RegExp(`^redactor_actor_up\\{actor="${id}"\\} 0$`, "m"));
    ownerMetrics.close();
    otherMetrics.close();
  });

  it("collects process metrics only when asked, and removes them on close", async () => {
    const system = await newSystem();
    const plain = createMetrics(system);
    expect(await plain.metrics()).not.toContain("process_cpu");
    plain.close();
    const registry = new Registry();
    const withProcess = createMetrics(system, { registry, processMetrics: true });
    const text = await withProcess.metrics();
    expect(text).toMatch(/^redactor_process_cpu_seconds_total \d/m);
    expect(text).toMatch(/^redactor_nodejs_eventloop_lag_seconds /m);
    withProcess.close();
    expect(registry.getMetricsAsArray()).toEqual([]);
    expect(() => createMetrics(system, { processMetrics: "yes" as never })).toThrow(InvalidOptionError);
  });

  it("answers /health while the process runs and /ready only while started and connected", async () => {
    const own = await startRedis();
    const system = await createSystem({
      appId: uniqueId("ready"),
      redis: own.url,
      logger: pino({ level: "silent" }),
    });
    const metrics = createMetrics(system);
    const server = await serveMetrics(metrics, { port: 0 });
    const base = `http://127.0.0.1:${server.port}`;
    try {
      expect(metrics.ready()).toBe(true);
      expect((await fetch(`${base}/health`)).status).toBe(200);
      const ready = await fetch(`${base}/ready`);
      expect([ready.status, await ready.text()]).toEqual([200, "ready\n"]);
      expect((await fetch(`${base}/metrics`)).status).toBe(200);
      // Redis goes away: still alive, not ready; back: ready again.
      await own.kill();
      await waitFor(async () => (await fetch(`${base}/ready`)).status === 503, 5000, "not ready");
      expect((await fetch(`${base}/health`)).status).toBe(200);
      await own.restart();
      await waitFor(async () => (await fetch(`${base}/ready`)).status === 200, 10_000, "ready again");
      await system.shutdown();
      const stopped = await fetch(`${base}/ready`);
      expect(stopped.status).toBe(503);
      expect(await stopped.text()).toMatch(/not ready/);
      expect((await fetch(`${base}/health`)).status).toBe(200);
    } finally {
      await server.close();
      await system.shutdown();
      await own.stop();
    }
    // A bare registry has nothing to judge readiness by, unless given.
    const bare = await serveMetrics(new Registry(), { port: 0 });
    const judged = await serveMetrics(new Registry(), { port: 0, ready: async () => true });
    try {
      const res = await fetch(`http://127.0.0.1:${bare.port}/ready`);
      expect(res.status).toBe(503);
      expect(await res.text()).toMatch(/no readiness check/);
      expect((await fetch(`http://127.0.0.1:${judged.port}/ready`)).status).toBe(200);
      expect((await fetch(`http://127.0.0.1:${bare.port}/health`)).status).toBe(200);
    } finally {
      await bare.close();
      await judged.close();
    }
  });
});
