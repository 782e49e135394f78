/** Metrics: prom-client values after real traffic, the queue gauges, and the /metrics endpoint. */
import { createServer } from "node:net";
import { Registry } from "prom-client";
import { describe, expect, it } from "vitest";
import { createMetrics, defineActor, MetricsError, Priority, serveMetrics } from "../src/index.js";
import { uniqueId, useRedis } from "./harness/redis.js";
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
