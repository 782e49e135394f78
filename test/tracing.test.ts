/**
 * OpenTelemetry tracing (src/tracing.ts), on one server and on a cluster, with the SDK's
 * BasicTracerProvider and InMemorySpanExporter: a tell is one trace (send → process), an ask is
 * one trace (ask → send → process → reply), a retried message's runs and a scheduled message's
 * run stay in the sender's trace, the envelope in the inbox carries no trace field (the context
 * is in the message's hash), errors are recorded (dead letter, handler throws, ask timeout), and
 * with tracing off nothing is written or recorded. Then the option's default (the global tracer
 * provider) and the traceparent codec (a seeded property).
 */
import { AsyncLocalStorage } from "node:async_hooks";
import {
  type Context,
  type ContextManager,
  context,
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  trace,
} from "@opentelemetry/api";
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  type ReadableSpan,
  SimpleSpanProcessor,
} from "@opentelemetry/sdk-trace-base";
import fc from "fast-check";
import { pino } from "pino";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import {
  AskTimeoutError,
  createSystem,
  defineActor,
  InvalidOptionError,
  type SystemOptions,
} from "../src/index.js";
import { formatTraceparent, parseTraceparent } from "../src/tracing.js";
import { describeBackends, MASTERS_ONLY, useBackendSystems } from "./harness/backends.js";
import { FIELDS } from "./harness/member-arbitraries.js";
import { uniqueId, useRedis } from "./harness/redis.js";
import { useSystems, waitFor } from "./harness/system.js";

/** A tracer provider whose spans are kept in memory. */
function inMemoryTracing(): { exporter: InMemorySpanExporter; provider: BasicTracerProvider } {
  const exporter = new InMemorySpanExporter();
  const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
  return { exporter, provider };
}

/** A context manager on AsyncLocalStorage (what the Node SDK registers), for nesting under a handler. */
class AsyncContextManager implements ContextManager {
  private readonly storage = new AsyncLocalStorage<Context>();
  active(): Context {
    return this.storage.getStore() ?? ROOT_CONTEXT;
  }
  with<A extends unknown[], F extends (...args: A) => ReturnType<F>>(
    ctx: Context,
    fn: F,
    thisArg?: ThisParameterType<F>,
    ...args: A
  ): ReturnType<F> {
    return this.storage.run(ctx, () => fn.call(thisArg, ...args));
  }
  bind<T>(_ctx: Context, target: T): T {
    return target;
  }
  enable(): this {
    return this;
  }
  disable(): this {
    this.storage.disable();
    return this;
  }
}

const parentOf = (span: ReadableSpan) => span.parentSpanContext?.spanId;
const traceOf = (span: ReadableSpan) => span.spanContext().traceId;
const idOf = (span: ReadableSpan) => span.spanContext().spanId;

describeBackends(
  "tracing",
  (backend) => {
    const { exporter, provider } = inMemoryTracing();
    const tracer = provider.getTracer("redactor-test");
    const system = useBackendSystems(backend);
    const traced = (options: Partial<SystemOptions> = {}) => system({ tracing: { tracer }, ...options });
    afterEach(() => exporter.reset());

    /** The finished spans named `name`. */
    const spans = (name: string) => exporter.getFinishedSpans().filter((s) => s.name === name);

    it("a tell is one trace: its send span is the parent of its process span, linked from the claim", async () => {
      const actor = uniqueId("traced");
      const seen: string[] = [];
      const sys = await traced();
      await sys.spawn(
        defineActor<{ ping: { payload: { n: number } } }>({
          id: actor,
          handlers: { ping: async (p) => void seen.push(JSON.stringify(p)) },
        }),
      );
      const id = await sys.ref(actor).tell("ping", { n: 1 });
      await waitFor(() => spans(`process ${actor}`).length === 1, 10_000, "the process span");
      const [send] = spans(`send ${actor}`);
      const [processed] = spans(`process ${actor}`);
      const [received] = spans(`receive ${actor}`);
      if (!send || !processed || !received) throw new Error("missing spans");
      expect(send.kind).toBe(SpanKind.PRODUCER);
      expect(processed.kind).toBe(SpanKind.CONSUMER);
      expect(traceOf(processed)).toBe(traceOf(send));
      expect(parentOf(processed)).toBe(idOf(send));
      expect(send.attributes).toMatchObject({
        "messaging.system": "redactor",
        "messaging.operation.type": "send",
        "messaging.destination.name": actor,
        "messaging.message.id": id,
        "redactor.message.type": "ping",
      });
      expect(processed.attributes).toMatchObject({
        "messaging.operation.type": "process",
        "messaging.destination.name": actor,
        "messaging.message.id": id,
        "redactor.message.attempt": 1,
      });
      expect(received.attributes).toMatchObject({ "messaging.operation.type": "receive" });
      expect(received.links.map((l) => l.context.spanId)).toContain(idOf(send));
      expect(processed.links.map((l) => l.context.spanId)).toContain(idOf(received));
      expect(processed.status.code).not.toBe(SpanStatusCode.ERROR);
    });

    it("a message without a readable trace context (a peer's bare ZADD, a garbled field) starts a trace of its own", async () => {
      const actor = uniqueId("peered");
      const sys = await traced();
      const client = backend().client();
      // A peer's message: no hash at all.
      const bare = {
        id: uniqueId("bare"),
        sender: "pyapp",
        recipient: actor,
        message_type: "job",
        payload: {},
        priority: 2,
        timestamp: Date.now() / 1000,
        reply_to: null,
        timeout: null,
      };
      await client.zadd(backend().keys.inbox(actor), 2000 + bare.timestamp, JSON.stringify(bare));
      // One of ours whose hash field was overwritten with something that is not a traceparent.
      const garbled = await sys.ref(actor).tell("job", {});
      await client.hset(backend().keys.message(actor, garbled), "traceparent", "00-not-a-trace-context-01");
      await sys.spawn(defineActor({ id: actor, handlers: { job: async () => {} } }));
      await waitFor(() => spans(`process ${actor}`).length === 2, 10_000, "two process spans");
      const [send] = spans(`send ${actor}`);
      for (const processed of spans(`process ${actor}`)) {
        expect(parentOf(processed)).toBeUndefined();
        expect(traceOf(processed)).not.toBe(send && traceOf(send));
        expect(processed.status.code).not.toBe(SpanStatusCode.ERROR);
      }
      expect(
        spans(`process ${actor}`)
          .map((p) => p.attributes["messaging.message.id"])
          .sort(),
      ).toEqual([bare.id, garbled].sort());
    });

    it("the context is in the message's hash, never in the envelope: the inbox member has nine fields", async () => {
      const parked = uniqueId("parked");
      const sys = await traced();
      const id = await sys.ref(parked).tell("job", { n: 1 });
      const client = backend().client();
      const [member] = await client.zrange(backend().keys.inbox(parked), 0, -1);
      expect(Object.keys(JSON.parse(member as string))).toEqual([...FIELDS]);
      expect(member).not.toContain("traceparent");
      const stored = await client.hget(backend().keys.message(parked, id), "traceparent");
      const [send] = spans(`send ${parked}`);
      if (!send) throw new Error("no send span");
      expect(stored).toBe(formatTraceparent(send.spanContext()));
    });

    it("an ask is one trace: ask → send → process → reply, and the ask span ends when the reply arrives", async () => {
      const actor = uniqueId("answers");
      const sys = await traced();
      await sys.spawn(
        defineActor<{ add: { payload: { a: number; b: number }; reply: { sum: number } } }>({
          id: actor,
          handlers: {
            add: async (p) => {
              const { a, b } = p as { a: number; b: number };
              return { sum: a + b };
            },
          },
        }),
      );
      const reply = await sys.ref(actor).ask("add", { a: 2, b: 3 }, { timeoutMs: 10_000 });
      expect(reply).toEqual({ sum: 5 });
      await waitFor(() => spans(`reply ${sys.appId}`).length === 1, 5000, "the reply span");
      const [ask] = spans(`ask ${actor}`);
      const [send] = spans(`send ${actor}`);
      const [processed] = spans(`process ${actor}`);
      const [replied] = spans(`reply ${sys.appId}`);
      if (!ask || !send || !processed || !replied) throw new Error("missing spans");
      expect(new Set([ask, send, processed, replied].map(traceOf)).size).toBe(1);
      expect(ask.kind).toBe(SpanKind.CLIENT);
      expect(parentOf(ask)).toBeUndefined();
      expect(parentOf(send)).toBe(idOf(ask));
      expect(parentOf(processed)).toBe(idOf(send));
      expect(parentOf(replied)).toBe(idOf(processed));
      expect(replied.attributes["messaging.message.conversation_id"]).toBe(
        send.attributes["messaging.message.id"],
      );
      // The ask ends after the reply was sent (hrtime [s, ns] compared as numbers).
      const ns = (t: [number, number]) => t[0] * 1e9 + t[1];
      expect(ns(ask.endTime)).toBeGreaterThanOrEqual(ns(replied.startTime));
    });

    it("a retried message's runs are two process spans in the sender's trace, the first an error", async () => {
      const actor = uniqueId("flaky");
      let runs = 0;
      const sys = await traced();
      await sys.spawn(
        defineActor({
          id: actor,
          onFailure: "resume",
          retryBackoff: { minMs: 20, maxMs: 20, jitter: 0 },
          handlers: {
            job: async () => {
              runs += 1;
              if (runs === 1) throw new Error("first run fails");
            },
          },
        }),
      );
      await sys.ref(actor).tell("job", {});
      await waitFor(() => spans(`process ${actor}`).length === 2, 10_000, "two process spans");
      const [send] = spans(`send ${actor}`);
      const runsSpans = spans(`process ${actor}`).sort(
        (a, b) =>
          Number(a.attributes["redactor.message.attempt"]) - Number(b.attributes["redactor.message.attempt"]),
      );
      const [first, second] = runsSpans;
      if (!send || !first || !second) throw new Error("missing spans");
      for (const run of runsSpans) {
        expect(traceOf(run)).toBe(traceOf(send));
        expect(parentOf(run)).toBe(idOf(send));
      }
      expect(first.attributes["redactor.message.attempt"]).toBe(1);
      expect(second.attributes["redactor.message.attempt"]).toBe(2);
      expect(first.status.code).toBe(SpanStatusCode.ERROR);
      expect(first.status.message).toBe("first run fails");
      expect(first.attributes["redactor.retry"]).toBe(true);
      expect(first.events.map((e) => e.name)).toContain("exception");
      expect(second.status.code).not.toBe(SpanStatusCode.ERROR);
    });

    it("a scheduled message's run is in its sender's trace", async () => {
      const actor = uniqueId("later");
      const sys = await traced();
      await sys.spawn(defineActor({ id: actor, handlers: { land: async () => {} } }));
      const id = await sys.ref(actor).tell("land", {}, { delayMs: 300 });
      const [send] = spans(`send ${actor}`);
      if (!send) throw new Error("no send span");
      expect(send.attributes["redactor.message.due_ms"]).toBeGreaterThan(0);
      await waitFor(() => spans(`process ${actor}`).length === 1, 10_000, "the process span");
      const [processed] = spans(`process ${actor}`);
      if (!processed) throw new Error("no process span");
      expect(processed.attributes["messaging.message.id"]).toBe(id);
      expect(traceOf(processed)).toBe(traceOf(send));
      expect(parentOf(processed)).toBe(idOf(send));
    });

    it("a dead letter and an ask timeout are errors on their spans", async () => {
      const actor = uniqueId("picky");
      const sys = await traced();
      await sys.spawn(defineActor({ id: actor, handlers: { known: async () => {} } }));
      await sys.ref(actor).tell("unknown", {});
      await waitFor(() => spans(`process ${actor}`).length === 1, 10_000, "the process span");
      const [dead] = spans(`process ${actor}`);
      expect(dead?.status.code).toBe(SpanStatusCode.ERROR);
      expect(dead?.attributes["redactor.dead_letter.reason"]).toBe("unknown-type");

      const nobody = uniqueId("nobody");
      await expect(sys.ref(nobody).ask("hello", {}, { timeoutMs: 200 })).rejects.toBeInstanceOf(
        AskTimeoutError,
      );
      await waitFor(() => spans(`ask ${nobody}`).length === 1, 5000, "the ask span");
      const [ask] = spans(`ask ${nobody}`);
      expect(ask?.status.code).toBe(SpanStatusCode.ERROR);
      expect(ask?.events.map((e) => e.name)).toContain("exception");
    });

    it("with an async context manager, a handler's tell is a child of its process span", async () => {
      const manager = new AsyncContextManager();
      context.setGlobalContextManager(manager);
      try {
        const first = uniqueId("first");
        const second = uniqueId("second");
        const sys = await traced();
        await sys.spawn(defineActor({ id: second, handlers: { hop: async () => {} } }));
        await sys.spawn(
          defineActor({
            id: first,
            handlers: { hop: async (_p: unknown, ctx) => void (await ctx.ref(second).tell("hop", {})) },
          }),
        );
        await sys.ref(first).tell("hop", {});
        await waitFor(() => spans(`process ${second}`).length === 1, 10_000, "the second hop");
        const [processFirst] = spans(`process ${first}`);
        const [sendSecond] = spans(`send ${second}`);
        const [processSecond] = spans(`process ${second}`);
        if (!processFirst || !sendSecond || !processSecond) throw new Error("missing spans");
        expect(parentOf(sendSecond)).toBe(idOf(processFirst));
        expect(parentOf(processSecond)).toBe(idOf(sendSecond));
        expect(traceOf(processSecond)).toBe(traceOf(processFirst));
      } finally {
        context.disable();
      }
    });

    it("with tracing off nothing is written to the hash and no span is recorded", async () => {
      const actor = uniqueId("dark");
      const parked = uniqueId("parked");
      const sys = await system({ tracing: false });
      await sys.spawn(
        defineActor<{ ping: { payload: object; reply: { pong: boolean } } }>({
          id: actor,
          handlers: { ping: async () => ({ pong: true }) },
        }),
      );
      expect(await sys.ref(actor).ask("ping", {}, { timeoutMs: 10_000 })).toEqual({ pong: true });
      const id = await sys.ref(parked).tell("job", {});
      const scheduled = await sys.ref(parked).tell("job", {}, { delayMs: 60_000 });
      const client = backend().client();
      expect(await client.hexists(backend().keys.message(parked, id), "traceparent")).toBe(0);
      expect(await client.hexists(backend().keys.message(parked, scheduled), "traceparent")).toBe(0);
      expect(exporter.getFinishedSpans()).toEqual([]);
    });

    afterAll(async () => {
      await provider.shutdown();
    });
  },
  MASTERS_ONLY,
);

describe("tracing option", () => {
  const redis = useRedis();
  const system = useSystems(redis);

  it("refuses a tracer that is not one", async () => {
    await expect(system({ tracing: { tracer: {} as never } })).rejects.toBeInstanceOf(InvalidOptionError);
    await expect(system({ tracing: "yes" as never })).rejects.toBeInstanceOf(InvalidOptionError);
  });

  it("by default traces only once a global tracer provider is registered", async () => {
    const { exporter, provider } = inMemoryTracing();
    const parked = uniqueId("parked");
    const client = redis().client();
    const off = await system();
    const before = await off.ref(parked).tell("job", {});
    expect(await client.hexists(`message:${before}`, "traceparent")).toBe(0);

    expect(trace.setGlobalTracerProvider(provider)).toBe(true);
    try {
      const on = await system();
      const after = await on.ref(parked).tell("job", {});
      const stored = await client.hget(`message:${after}`, "traceparent");
      const [send] = exporter.getFinishedSpans();
      expect(send?.name).toBe(`send ${parked}`);
      expect(stored).toBe(send && formatTraceparent(send.spanContext()));
      // The system made before the provider was registered stays off.
      await off.ref(parked).tell("job", {});
      expect(exporter.getFinishedSpans()).toHaveLength(1);
    } finally {
      trace.disable();
      await provider.shutdown();
    }
  });

  it("createSystem with tracing: true works without a registered provider (no-op spans, nothing written)", async () => {
    const parked = uniqueId("parked");
    const sys = await createSystem({
      appId: uniqueId("sys"),
      redis: redis().url,
      logger: pino({ level: "silent" }),
      tracing: true,
    });
    try {
      const id = await sys.ref(parked).tell("job", {});
      expect(await redis().client().hexists(`message:${id}`, "traceparent")).toBe(0);
    } finally {
      await sys.shutdown();
    }
  });
});

describe("traceparent", () => {
  it("formats and parses W3C trace contexts (seeded property)", () => {
    const hex = (n: number) => fc.stringMatching(new RegExp(`^[0-9a-f]{${n}}$`));
    fc.assert(
      fc.property(hex(32), hex(16), fc.integer({ min: 0, max: 255 }), (traceId, spanId, traceFlags) => {
        const text = formatTraceparent({ traceId, spanId, traceFlags });
        expect(text).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$/);
        const parsed = parseTraceparent(text);
        if (/^0+$/.test(traceId) || /^0+$/.test(spanId)) expect(parsed).toBeUndefined();
        else expect(parsed).toEqual({ traceId, spanId, traceFlags });
      }),
      { seed: 134, numRuns: 500 },
    );
  });

  it("refuses what is not one", () => {
    const ok = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    expect(parseTraceparent(ok)).toEqual({
      traceId: "0af7651916cd43dd8448eb211c80319c",
      spanId: "b7ad6b7169203331",
      traceFlags: 1,
    });
    for (const bad of [
      "",
      "garbage",
      `ff${ok.slice(2)}`,
      `${ok}-extra`,
      ok.toUpperCase(),
      "00-00000000000000000000000000000000-b7ad6b7169203331-01",
      "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",
    ]) {
      expect(parseTraceparent(bad)).toBeUndefined();
    }
    // A later version's first four fields are read, whatever follows.
    expect(parseTraceparent(`01${ok.slice(2)}-more`)?.spanId).toBe("b7ad6b7169203331");
  });
});
