/**
 * OpenTelemetry tracing: spans for send, ask, claim (receive), handle (process) and reply,
 * through `@opentelemetry/api`, an optional peer dependency loaded lazily (a dynamic import
 * that may fail). Off, nothing here runs: the system holds no Tracing and every call site is
 * skipped by one `undefined` check.
 *
 * The trace context travels in the message's hash (`traceparent`, W3C Trace Context text,
 * written by send.lua and schedule.lua), never in the nine-field envelope, so a retried or a
 * scheduled message's run stays in its sender's trace. The process span of a message is a
 * child of its send span; the claim that handed it out is a `receive` span linked to the sends
 * of what it claimed. Attribute names follow OpenTelemetry's semantic conventions for messaging
 * (`messaging.system`, `messaging.operation.type`, `messaging.destination.name`,
 * `messaging.message.id` …).
 *
 * No type of `@opentelemetry/api` appears in this module's declarations: a program without the
 * package type-checks against redactor as before.
 */
import type * as OtelApi from "@opentelemetry/api";
import type { Envelope } from "./envelope.js";
import { InvalidOptionError } from "./errors.js";
import type { ClaimedMessage, EncodedMessage } from "./mailbox.js";

/**
 * The slice of an `@opentelemetry/api` Tracer that redactor uses (`trace.getTracer(name)`, or a
 * TracerProvider's `getTracer`); typed here so that the option needs no OpenTelemetry types.
 */
export interface TracerLike {
  startSpan(name: string, options?: never, context?: never): unknown;
}

/**
 * The `tracing` option of createSystem.
 * - `true`: trace, with the global tracer provider's tracer named "redactor" (a no-op tracer
 *   until one is registered); throws InvalidOptionError at createSystem when
 *   `@opentelemetry/api` is not installed.
 * - `{ tracer }`: trace with this tracer (the API must be installed too).
 * - `false`: never trace; the API is not even loaded.
 * - left out: trace when `@opentelemetry/api` is installed AND a global tracer provider is
 *   registered when createSystem runs (start the OpenTelemetry SDK first), else off.
 */
export type TracingOption = boolean | { tracer?: TracerLike };

/** A span begun by Tracing (an `@opentelemetry/api` Span, opaque outside this module). */
export interface OpenSpan {
  end(): void;
}

/** The `messaging.system` of every span. */
const SYSTEM = "redactor";

/** The name of the tracer redactor asks the global provider for. */
const TRACER_NAME = "redactor";

/** W3C traceparent, version 00 (or a later version's first four fields). */
const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$/;

type Api = typeof OtelApi;
type Span = OtelApi.Span;
type SpanContext = OtelApi.SpanContext;

/**
 * Checks the `tracing` option's shape (InvalidOptionError); whether the API can be loaded is
 * known only by `Tracing.load`.
 */
export function checkTracingOption(value: unknown): void {
  if (value === undefined || typeof value === "boolean") return;
  const tracer =
    value !== null && typeof value === "object" && !Array.isArray(value)
      ? (value as { tracer?: unknown }).tracer
      : null;
  if (
    tracer === undefined ||
    (tracer !== null &&
      typeof tracer === "object" &&
      typeof (tracer as { startSpan?: unknown }).startSpan === "function")
  ) {
    return;
  }
  throw new InvalidOptionError(
    "tracing",
    value,
    "invalid option tracing: it must be true, false or { tracer }, where tracer is an OpenTelemetry " +
      'Tracer (trace.getTracer("my-app") from @opentelemetry/api) (leave it out for the default: on ' +
      "when @opentelemetry/api is installed and a global tracer provider is registered)",
  );
}

/** Formats a span context as a W3C `traceparent` (version 00). */
export function formatTraceparent(context: { traceId: string; spanId: string; traceFlags: number }): string {
  const flags = (context.traceFlags & 0xff).toString(16).padStart(2, "0");
  return `00-${context.traceId}-${context.spanId}-${flags}`;
}

/**
 * Parses a W3C `traceparent`; undefined when it is not one (wrong shape, version ff, an id of
 * zeros): such a message's run starts a trace of its own.
 */
export function parseTraceparent(
  text: string,
): { traceId: string; spanId: string; traceFlags: number } | undefined {
  const m = TRACEPARENT.exec(text);
  if (!m) return undefined;
  const [, version, traceId, spanId, flags, rest] = m as unknown as [
    string,
    string,
    string,
    string,
    string,
    string?,
  ];
  if (version === "ff" || (version === "00" && rest !== undefined)) return undefined;
  if (/^0+$/.test(traceId) || /^0+$/.test(spanId)) return undefined;
  return { traceId, spanId, traceFlags: Number.parseInt(flags, 16) };
}

/** Epoch ms of `performance.now()` reading `at`: a span's start time taken before it began. */
function epochMs(at: number): number {
  return performance.timeOrigin + at;
}

function asError(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err));
}

/** The spans of one actor system. */
export class Tracing {
  private constructor(
    private readonly api: Api,
    private readonly tracer: OtelApi.Tracer,
  ) {}

  /**
   * The tracing of a system with option `option`, or undefined when it is off (the option is
   * false; or left out, and the API is missing or no global tracer provider is registered).
   * @throws InvalidOptionError when tracing is asked for (`true` or `{ tracer }`) and
   *   `@opentelemetry/api` cannot be loaded.
   */
  static async load(option: TracingOption | undefined): Promise<Tracing | undefined> {
    if (option === false) return undefined;
    let api: Api;
    try {
      api = (await import("@opentelemetry/api")) as Api;
    } catch (err) {
      if (option === undefined) return undefined;
      throw Object.assign(
        new InvalidOptionError(
          "tracing",
          option,
          "tracing is on but @opentelemetry/api cannot be loaded; install it (npm install @opentelemetry/api) " +
            "or leave the tracing option out",
        ),
        { cause: err },
      );
    }
    const given = typeof option === "object" ? option.tracer : undefined;
    if (given) return new Tracing(api, given as unknown as OtelApi.Tracer);
    if (option === undefined && !Tracing.providerRegistered(api)) return undefined;
    return new Tracing(api, api.trace.getTracer(TRACER_NAME));
  }

  /** True when a global tracer provider is registered (the API's proxy has a delegate). */
  private static providerRegistered(api: Api): boolean {
    const provider = api.trace.getTracerProvider() as Partial<OtelApi.ProxyTracerProvider>;
    if (typeof provider.getDelegateTracer === "function")
      return provider.getDelegateTracer(TRACER_NAME) !== undefined;
    // Not the API's proxy: someone registered this provider.
    return true;
  }

  /** The common attributes of a message's spans. */
  private attributes(operation: string, kind: string, destination: string, id: string, type: string) {
    return {
      "messaging.system": SYSTEM,
      "messaging.operation.type": kind,
      "messaging.operation.name": operation,
      "messaging.destination.name": destination,
      "messaging.message.id": id,
      "redactor.message.type": type,
    };
  }

  /** The span as an API Span. */
  private span(span: OpenSpan): Span {
    return span as unknown as Span;
  }

  /**
   * Begins the span of sending `message` (a PRODUCER span `send <recipient>`, a child of
   * `parent` when given, else of the active context) and stamps `message.traceparent` with it,
   * so that the send script writes it into the message's hash. `dueMs`: a scheduled message's
   * due time (epoch ms).
   */
  send(message: EncodedMessage, dueMs?: number, parent?: OpenSpan): OpenSpan {
    const { api } = this;
    const e = message.envelope;
    const attributes: OtelApi.Attributes = this.attributes("send", "send", e.recipient, e.id, e.message_type);
    attributes["redactor.sender"] = e.sender;
    attributes["redactor.message.priority"] = e.priority;
    if (dueMs !== undefined) attributes["redactor.message.due_ms"] = dueMs;
    const context = parent
      ? api.trace.setSpan(api.context.active(), this.span(parent))
      : api.context.active();
    const span = this.tracer.startSpan(
      `send ${e.recipient}`,
      { kind: api.SpanKind.PRODUCER, attributes },
      context,
    );
    const sc = span.spanContext();
    if (api.isSpanContextValid(sc)) message.traceparent = formatTraceparent(sc);
    return span;
  }

  /** Begins the span of an ask (a CLIENT span `ask <recipient>`), ended when its reply arrives. */
  ask(request: Envelope): OpenSpan {
    const { api } = this;
    const attributes: OtelApi.Attributes = this.attributes(
      "ask",
      "send",
      request.recipient,
      request.id,
      request.message_type,
    );
    if (request.timeout !== null) attributes["redactor.ask.timeout_s"] = request.timeout;
    return this.tracer.startSpan(
      `ask ${request.recipient}`,
      { kind: api.SpanKind.CLIENT, attributes },
      api.context.active(),
    );
  }

  /**
   * Records a claim of `app`'s inbox that handed out messages: a `receive <app>` span from
   * `startedAt` (performance.now() when the claim was sent) to now, linked to the send span of
   * each claimed message that carries one. Returns it (ended) for the process spans to link to.
   */
  received(
    app: string,
    startedAt: number,
    claimed: readonly ClaimedMessage[],
    counts: { timedOut: number; rejected: number; duplicates: number },
  ): OpenSpan {
    const { api } = this;
    const links: OtelApi.Link[] = [];
    for (const m of claimed) {
      const remote = m.traceparent ? this.remote(m.traceparent) : undefined;
      if (remote) links.push({ context: remote });
    }
    const span = this.tracer.startSpan(
      `receive ${app}`,
      {
        kind: api.SpanKind.CONSUMER,
        startTime: epochMs(startedAt),
        links,
        attributes: {
          "messaging.system": SYSTEM,
          "messaging.operation.type": "receive",
          "messaging.operation.name": "claim",
          "messaging.destination.name": app,
          "messaging.batch.message_count": claimed.length,
          "redactor.claim.timed_out": counts.timedOut,
          "redactor.claim.rejected": counts.rejected,
          "redactor.claim.duplicates": counts.duplicates,
        },
      },
      api.ROOT_CONTEXT,
    );
    span.end();
    return span;
  }

  /**
   * Begins the span of handling a claimed message (a CONSUMER span `process <app>`): a child of
   * its send span when its hash carried a `traceparent`, else the root of a trace of its own;
   * linked to the claim that handed it out.
   */
  process(app: string, claimed: ClaimedMessage, attempt: number, claim?: OpenSpan, type?: string): OpenSpan {
    const { api } = this;
    const remote = claimed.traceparent ? this.remote(claimed.traceparent) : undefined;
    const parent = remote ? api.trace.setSpanContext(api.ROOT_CONTEXT, remote) : api.ROOT_CONTEXT;
    const attributes: OtelApi.Attributes = this.attributes("process", "process", app, claimed.id, type ?? "");
    attributes["redactor.message.attempt"] = attempt;
    attributes["redactor.message.priority"] = claimed.priority;
    return this.tracer.startSpan(
      `process ${app}`,
      {
        kind: api.SpanKind.CONSUMER,
        attributes,
        links: claim ? [{ context: this.span(claim).spanContext() }] : [],
      },
      parent,
    );
  }

  /** Begins the span of sending `reply` (a PRODUCER span `reply <recipient>`), a child of `handling`. */
  reply(handling: OpenSpan, reply: Envelope): OpenSpan {
    const { api } = this;
    const attributes: OtelApi.Attributes = this.attributes(
      "reply",
      "send",
      reply.recipient,
      reply.id,
      reply.message_type,
    );
    if (reply.reply_to !== null) attributes["messaging.message.conversation_id"] = reply.reply_to;
    return this.tracer.startSpan(
      `reply ${reply.recipient}`,
      { kind: api.SpanKind.PRODUCER, attributes },
      api.trace.setSpan(api.ROOT_CONTEXT, this.span(handling)),
    );
  }

  /** Runs `work` with `span` as the active span (a handler's own spans and sends nest under it). */
  within<T>(span: OpenSpan, work: () => T): T {
    const { api } = this;
    return api.context.with(api.trace.setSpan(api.context.active(), this.span(span)), work);
  }

  /**
   * Records a failure on `span` (status ERROR, the exception as an event). `deadLetter`: the
   * dead-letter reason when the message was dead-lettered; `retry`: it will run again.
   */
  fail(span: OpenSpan, error: unknown, detail: { deadLetter?: string; retry?: boolean } = {}): void {
    const s = this.span(span);
    const err = asError(error);
    s.recordException(err);
    s.setStatus({ code: this.api.SpanStatusCode.ERROR, message: err.message });
    if (detail.deadLetter !== undefined) s.setAttribute("redactor.dead_letter.reason", detail.deadLetter);
    if (detail.retry !== undefined) s.setAttribute("redactor.retry", detail.retry);
  }

  /** Ends `span` when `work` settles (with the error recorded when it rejects); returns `work`. */
  settle<T>(span: OpenSpan, work: Promise<T>): Promise<T> {
    work.then(
      () => span.end(),
      (err: unknown) => {
        this.fail(span, err);
        span.end();
      },
    );
    return work;
  }

  /** A remote span context from a traceparent, or undefined when it is not one. */
  private remote(traceparent: string): SpanContext | undefined {
    const parsed = parseTraceparent(traceparent);
    return parsed && { ...parsed, isRemote: true };
  }
}
