/**
 * The web dashboard: one static page (index.html, app.js, style.css beside this file) and a small
 * JSON API with server-sent events, on node:http.
 *
 * - `GET /api/apps`: every app (presence, hosts, inbox, in flight, dead, scheduled, oldest waiting).
 * - `GET /api/apps/<app>`: the app's inbox in run order, its leases, dead letters and scheduled messages.
 * - `GET /api/messages/<id>[?app=<recipient>]`: one message's lifecycle (src/inspection.ts).
 * - `GET /api/tail[?type=a,b]`: a live tail (server-sent events), the source `redactor tail` uses.
 *   A page that stops reading is not buffered for without bound: past 1 MiB unread its events
 *   are skipped until it catches up, then one `note` event says how many (class TailHub).
 * - `POST /api/apps/<app>/dead/retry|purge` (`{"ids": […]}` or `{"all": true}`), `POST /api/send`,
 *   `POST /api/ask` (`{"app", "type", "payload", "priority", "timeoutMs"}`).
 *
 * There is no authentication: anyone who can reach the port can read every message and send,
 * retry and purge. It binds 127.0.0.1 by default. POSTs need `Content-Type: application/json`,
 * the page's token in `X-Redactor-Token` (a cross-site form or fetch cannot read it) and, when the
 * browser sends one, an `Origin` of this server; on a loopback address the `Host` header must name
 * the loopback too (no DNS rebinding). The page builds every element with `textContent`, never
 * HTML from data, and a Content-Security-Policy forbids inline scripts.
 */
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { deadJson, inboxJson, inFlightJson, scheduledJson } from "../cli/commands/inspect.js";
import { followMessages, type MessageFollower, type TailEvent } from "../cli/commands/tail.js";
import { hostsOf, orderingOf, readApp, readDead, readInbox, readInFlight } from "../cli/queues.js";
import { isCluster, type RedisClient } from "../cluster.js";
import { purgeDeadLetters, retryDeadLetters } from "../dead-letters.js";
import {
  AskFailedError,
  AskTimeoutError,
  DashboardError,
  InvalidOptionError,
  RedactorError,
} from "../errors.js";
import { listAppOverviews, readMessageLifecycle } from "../inspection.js";
import type { Keyspace } from "../keyspace.js";
import { systemStore } from "../metrics.js";
import { checkNumber } from "../options.js";
import { isPriority, Priority } from "../priority.js";
import { listScheduled } from "../scheduler.js";
import type { ActorSystem } from "../system.js";

/** Options of `serveDashboard`. */
export interface DashboardOptions {
  /**
   * TCP port; 0 picks a free one (read it back from `url` / `port`).
   * @default 8080
   */
  port?: number;
  /**
   * Address to bind. The dashboard has no authentication: keep it on the loopback, or put it
   * behind a proxy that authenticates, before binding anything else.
   * @default "127.0.0.1"
   */
  host?: string;
  /**
   * Rows shown per list (inbox, in flight, dead letters, scheduled).
   * @default 100
   */
  limit?: number;
  /**
   * Longest an ask from the page waits for its reply, ms, when the page gives none.
   * @default 5000
   */
  askTimeoutMs?: number;
}

/** A running dashboard. */
export interface DashboardServer {
  /** `http://<host>:<port>/`. */
  readonly url: string;
  readonly port: number;
  /** Stops serving: closes live tails and connections. The system is left running. */
  close(): Promise<void>;
}

const STATIC: Record<string, { file: string; type: string }> = {
  "/": { file: "index.html", type: "text/html; charset=utf-8" },
  "/app.js": { file: "app.js", type: "text/javascript; charset=utf-8" },
  "/style.css": { file: "style.css", type: "text/css; charset=utf-8" },
};

const SECURITY_HEADERS = {
  "X-Content-Type-Options": "nosniff",
  "Referrer-Policy": "no-referrer",
  "X-Frame-Options": "DENY",
  "Content-Security-Policy":
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; " +
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  "Cache-Control": "no-store",
};

/** Largest POST body read, bytes (a message is at most 1 MiB of JSON by default). */
const MAX_BODY = 2 * 1024 * 1024;

/** A request the API refuses; `status` is the HTTP status. */
/** A decoded path segment; 400 when it is not valid percent-encoding. */
function pathSegment(segment: string, what: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    throw new HttpError(400, `the ${what} in the path is not valid percent-encoding`);
  }
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

function readStatic(file: string): string {
  return readFileSync(new URL(`./${file}`, import.meta.url), "utf8");
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  res
    .writeHead(status, { ...SECURITY_HEADERS, "Content-Type": "application/json; charset=utf-8" })
    .end(JSON.stringify(body));
}

async function readJsonBody(req: IncomingMessage): Promise<Record<string, unknown>> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY) throw new HttpError(413, `the body is larger than ${MAX_BODY} bytes`);
    chunks.push(chunk as Buffer);
  }
  let value: unknown;
  try {
    value = JSON.parse(Buffer.concat(chunks).toString("utf8") || "{}");
  } catch (err) {
    throw new HttpError(400, `the body is not JSON: ${(err as Error).message}`);
  }
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw new HttpError(400, "the body must be a JSON object");
  }
  return value as Record<string, unknown>;
}

function textField(body: Record<string, unknown>, name: string): string {
  const value = body[name];
  if (typeof value !== "string" || value === "")
    throw new HttpError(400, `"${name}" must be a non-empty string`);
  return value;
}

function idsField(body: Record<string, unknown>): string[] | undefined {
  const ids = body.ids;
  if (ids === undefined) return undefined;
  if (!Array.isArray(ids) || ids.length === 0 || ids.some((id) => typeof id !== "string" || id === "")) {
    throw new HttpError(400, '"ids" must be a non-empty array of message ids');
  }
  return ids as string[];
}

function isLoopback(host: string): boolean {
  return host === "localhost" || host === "::1" || host.startsWith("127.");
}

/** The host name of a `Host` header (`name:port`, `[v6]:port`). */
function hostName(header: string): string {
  if (header.startsWith("[")) return header.slice(1, header.indexOf("]"));
  const colon = header.lastIndexOf(":");
  return colon < 0 ? header : header.slice(0, colon);
}

/**
 * Serves the dashboard of `system`'s Redis (every app there, not only the system's own actors):
 * apps, inboxes in run order, message lifecycles, dead letters with retry and purge, a live tail,
 * and send and ask (sent as `system.appId`). See the module comment for the API and its security.
 * @throws InvalidOptionError for a bad option; DashboardError when the port is in use or the host
 *   cannot be bound, or when `system` is not one that createSystem built.
 */
export async function serveDashboard(
  system: ActorSystem,
  options: DashboardOptions = {},
): Promise<DashboardServer> {
  checkNumber("port", options.port, { integer: true, min: 0, max: 65535 }, "8080");
  checkNumber("limit", options.limit, { integer: true, min: 1, max: 10_000 }, "100");
  checkNumber("askTimeoutMs", options.askTimeoutMs, { integer: true, min: 1 }, "5000");
  if (options.host !== undefined && (typeof options.host !== "string" || options.host === "")) {
    throw new InvalidOptionError(
      "host",
      options.host,
      'invalid option host: it must be a non-empty address, e.g. "127.0.0.1" (leave it out for the default, 127.0.0.1)',
    );
  }
  const store = systemStore(system);
  if (!store) {
    throw new DashboardError(
      "cannot read Redis: this system does not expose its connection; pass a system made by createSystem",
    );
  }
  const redis: RedisClient = store.redis;
  const keys: Keyspace = store.keys;
  const host = options.host ?? "127.0.0.1";
  const limit = options.limit ?? 100;
  const askTimeoutMs = options.askTimeoutMs ?? 5000;
  const token = randomBytes(24).toString("hex");
  const pages = Object.fromEntries(
    Object.entries(STATIC).map(([path, { file, type }]) => {
      const text = readStatic(file);
      return [path, { type, body: file === "index.html" ? text.replace("__REDACTOR_TOKEN__", token) : text }];
    }),
  );
  const tails = new TailHub(redis, keys, (text) => system.log.warn({ dashboard: true }, text));
  let port = 0;

  const checkPost = (req: IncomingMessage): void => {
    const type = req.headers["content-type"] ?? "";
    if (!type.toLowerCase().startsWith("application/json")) {
      throw new HttpError(415, "POST requests must have Content-Type: application/json");
    }
    if (req.headers["x-redactor-token"] !== token) {
      throw new HttpError(403, "missing or wrong X-Redactor-Token: reload the dashboard page");
    }
    const origin = req.headers.origin;
    if (origin !== undefined && origin !== "null") {
      let originHost: string;
      try {
        originHost = new URL(origin).host;
      } catch {
        throw new HttpError(403, `refused Origin ${origin}`);
      }
      if (originHost !== req.headers.host)
        throw new HttpError(403, `refused cross-origin request from ${origin}`);
    } else if (origin === "null") {
      throw new HttpError(403, "refused a request from an opaque origin");
    }
  };

  const appOf = (segment: string): string => {
    const app = pathSegment(segment, "app id");
    try {
      keys.checkApp(app);
    } catch (err) {
      throw new HttpError(400, (err as Error).message);
    }
    return app;
  };

  const routes = async (req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> => {
    const path = url.pathname;
    const parts = path.split("/").filter((p) => p !== "");
    if (req.method === "GET" && path === "/api/apps") {
      const now = Date.now();
      const apps = await listAppOverviews(redis, keys);
      sendJson(res, 200, {
        system: { appId: system.appId, nodeId: system.nodeId, hashTag: keys.hashTag },
        now,
        apps: apps.map((a) => ({
          app: a.app,
          status: a.state,
          kind: a.kind,
          hosts: a.presence?.nodes ?? [],
          lastSeen: a.lastSeen,
          inbox: a.inbox,
          inFlight: a.inFlight,
          dead: a.dead,
          scheduled: a.scheduled,
          oldestWaitingMs:
            a.oldestWaiting === null ? null : Math.max(0, Math.round(now - a.oldestWaiting * 1000)),
        })),
      });
      return;
    }
    if (req.method === "GET" && parts[0] === "api" && parts[1] === "apps" && parts.length === 3) {
      const app = appOf(parts[2] as string);
      const row = await readApp(redis, keys, app);
      if (!row) throw new HttpError(404, `no app "${app}": no presence hash, queues or scheduled messages`);
      const ordering = orderingOf(row.presence);
      const [inbox, inFlight, dead, scheduled] = await Promise.all([
        readInbox(redis, keys, app, ordering, limit),
        readInFlight(redis, keys, app, limit),
        readDead(redis, keys, app, limit),
        listScheduled(redis, keys, app, limit),
      ]);
      const now = Date.now();
      sendJson(res, 200, {
        app,
        status: row.state,
        kind: row.kind,
        hosts: hostsOf(row),
        lastSeen: row.lastSeen,
        ordering,
        now,
        inbox: { total: inbox.total, entries: inbox.entries.map((e) => inboxJson(e, now)) },
        inFlight: { total: inFlight.total, entries: inFlight.entries.map((e) => inFlightJson(e, now)) },
        dead: { total: dead.total, entries: dead.entries.map(deadJson) },
        scheduled: { total: scheduled.total, entries: scheduled.messages.map((m) => scheduledJson(m, now)) },
      });
      return;
    }
    if (req.method === "GET" && parts[0] === "api" && parts[1] === "messages" && parts.length === 3) {
      const id = pathSegment(parts[2] as string, "message id");
      const appParam = url.searchParams.get("app");
      const lifecycle = await readMessageLifecycle(
        redis,
        keys,
        id,
        appParam ? appOf(encodeURIComponent(appParam)) : undefined,
      );
      if (!lifecycle)
        throw new HttpError(404, `unknown message "${id}": no hash (it expires) and no copy in any queue`);
      // The dead-letter entries without the bytes kept for removing them (`member` has the text).
      const dead = lifecycle.dead.map(
        ({ raw: _raw, memberBytes: _bytes, message: _message, ...entry }) => entry,
      );
      sendJson(res, 200, { ...lifecycle, dead });
      return;
    }
    if (req.method === "GET" && path === "/api/tail") {
      const types = (url.searchParams.get("type") ?? "")
        .split(",")
        .map((t) => t.trim())
        .filter((t) => t !== "");
      await tails.attach(req, res, types.length > 0 ? new Set(types) : null);
      return;
    }
    if (req.method !== "POST") throw new HttpError(404, `no such page: ${req.method} ${path}`);
    checkPost(req);
    const body = await readJsonBody(req);
    if (parts[0] === "api" && parts[1] === "apps" && parts[3] === "dead" && parts.length === 5) {
      const app = appOf(parts[2] as string);
      const ids = idsField(body);
      if (ids === undefined && body.all !== true) {
        throw new HttpError(400, 'give "ids" (an array of message ids) or "all": true');
      }
      if (parts[4] === "retry") {
        sendJson(res, 200, await retryDeadLetters(redis, keys, app, ids ? { ids } : { limit: 1000 }));
        return;
      }
      if (parts[4] === "purge") {
        sendJson(res, 200, await purgeDeadLetters(redis, keys, app, ids ? { ids } : { all: true }));
        return;
      }
    }
    if (path === "/api/send" || path === "/api/ask") {
      const app = appOf(encodeURIComponent(textField(body, "app")));
      const type = textField(body, "type");
      // Left out: an empty object. null is not an object, and is refused like any other non-object.
      const payload = body.payload === undefined ? {} : body.payload;
      if (payload === null || typeof payload !== "object" || Array.isArray(payload)) {
        throw new HttpError(400, '"payload" must be a JSON object (the wire payload is an object)');
      }
      const priority = body.priority ?? Priority.NORMAL;
      if (!isPriority(priority)) throw new HttpError(400, '"priority" must be 1 (LOW) to 4 (CRITICAL)');
      const ref = system.ref(app);
      if (path === "/api/send") {
        const id = await ref.tell(type, payload, { priority });
        sendJson(res, 200, { ok: true, id });
        return;
      }
      const timeoutMs = body.timeoutMs ?? askTimeoutMs;
      if (
        typeof timeoutMs !== "number" ||
        !Number.isInteger(timeoutMs) ||
        timeoutMs < 1 ||
        timeoutMs > 600_000
      ) {
        throw new HttpError(400, '"timeoutMs" must be a whole number of ms from 1 to 600000');
      }
      const started = performance.now();
      try {
        const reply = await ref.ask(type, payload, { priority, timeoutMs });
        sendJson(res, 200, {
          ok: true,
          reply,
          latencyMs: Math.round((performance.now() - started) * 10) / 10,
        });
      } catch (err) {
        if (err instanceof AskTimeoutError || err instanceof AskFailedError) {
          sendJson(res, 200, { ok: false, error: err.name, message: err.message, id: err.messageId });
          return;
        }
        throw err;
      }
      return;
    }
    throw new HttpError(404, `no such page: POST ${path}`);
  };

  const server = createServer((req, res) => {
    const url = new URL(req.url ?? "/", "http://dashboard");
    const hostHeader = req.headers.host ?? "";
    if (isLoopback(host) && !isLoopback(hostName(hostHeader))) {
      sendJson(res, 421, {
        error: `refused Host ${hostHeader}: the dashboard answers on its loopback address only`,
      });
      return;
    }
    const page = pages[url.pathname];
    if (page && (req.method === "GET" || req.method === "HEAD")) {
      res
        .writeHead(200, { ...SECURITY_HEADERS, "Content-Type": page.type })
        .end(req.method === "HEAD" ? undefined : page.body);
      return;
    }
    routes(req, res, url).catch((err: unknown) => {
      if (res.headersSent) {
        res.end();
        return;
      }
      if (err instanceof HttpError) sendJson(res, err.status, { error: err.message });
      else if (err instanceof RedactorError) sendJson(res, 400, { error: err.message, name: err.name });
      else sendJson(res, 500, { error: (err as Error).message ?? String(err) });
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", (err: NodeJS.ErrnoException) => {
      reject(
        new DashboardError(
          err.code === "EADDRINUSE"
            ? `port ${options.port ?? 8080} on ${host} is in use; choose another port (0 picks a free one)`
            : `cannot serve the dashboard on ${host}:${options.port ?? 8080}: ${err.message}`,
          { cause: err },
        ),
      );
    });
    server.listen(options.port ?? 8080, host, () => resolve());
  });
  port = (server.address() as AddressInfo).port;
  const shownHost = host.includes(":") ? `[${host}]` : host;
  return {
    url: `http://${shownHost}:${port}/`,
    port,
    close: async () => {
      await tails.close();
      await new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      });
    },
  };
}

/**
 * Most bytes waiting to be sent to one page's live tail (in Node's buffers, not counting the
 * kernel's socket buffers) before its events are skipped: 1 MiB.
 */
const MAX_TAIL_BACKLOG = 1024 * 1024;

/** One open live tail. */
interface TailClient {
  res: ServerResponse;
  /** The type filter; null for every type. */
  types: Set<string> | null;
  /** Events skipped since the page fell behind; 0 while it keeps up. */
  skipped: number;
}

/**
 * The live tails of the page: one follower of the keyspace (`followMessages`, what `redactor
 * tail` uses) shared by every open page, started with the first and stopped with the last.
 *
 * A page that does not read (a frozen or throttled tab, a client that never reads) must not make
 * the server buffer without bound: once more than MAX_TAIL_BACKLOG bytes wait for a page, its
 * events (and pings) are skipped, not queued, until its connection drains; then it gets one
 * `note` event saying how many were skipped, where the gap is, and the tail goes on. The stream
 * stays open: ending it would make EventSource reconnect every few seconds and lose events
 * without a word.
 */
class TailHub {
  private readonly clients = new Set<TailClient>();
  private follower: Promise<{ follower: MessageFollower; sub: RedisClient }> | undefined;

  constructor(
    private readonly redis: RedisClient,
    private readonly keys: Keyspace,
    private readonly note: (text: string) => void,
  ) {}

  private start(): Promise<{ follower: MessageFollower; sub: RedisClient }> {
    const redis = this.redis;
    const sub: RedisClient = isCluster(redis)
      ? redis.duplicate(undefined, { shardedSubscribers: true })
      : redis.duplicate();
    sub.on("error", () => {});
    return followMessages(
      { cmd: redis, sub, keys: this.keys, apps: [], withPayload: true, poll: false, intervalMs: 250 },
      (e) => this.broadcast(e),
      (text) => {
        this.note(text);
        this.send("note", { text });
      },
    ).then(
      (follower) => ({ follower, sub }),
      (err: unknown) => {
        sub.disconnect();
        throw err;
      },
    );
  }

  /**
   * Writes one event to every page; a tail event (`type` given, null for none) only to the pages
   * whose type filter it passes. A page that is behind skips it (see the class comment).
   */
  private send(event: string, data: unknown, type?: string | null): void {
    const text = `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`;
    for (const client of this.clients) {
      if (type !== undefined && client.types && (type === null || !client.types.has(type))) continue;
      this.write(client, text);
    }
  }

  /**
   * Writes to one page unless it is behind; then the event is counted as skipped (a ping, not
   * `counted`, is only left out).
   */
  private write(client: TailClient, text: string, counted = true): void {
    if (client.skipped > 0 || client.res.writableLength > MAX_TAIL_BACKLOG) {
      if (counted) client.skipped += 1;
      return;
    }
    client.res.write(text);
  }

  /** The page has read what waited for it: tell it what it missed, and follow again. */
  private caughtUp(client: TailClient): void {
    if (client.skipped === 0) return;
    const text =
      `this page fell behind (more than ${MAX_TAIL_BACKLOG / 1024 / 1024} MiB unread): ` +
      `${client.skipped} tail events were skipped here`;
    client.skipped = 0;
    client.res.write(`event: note\ndata: ${JSON.stringify({ text })}\n\n`);
  }

  private broadcast(e: TailEvent): void {
    this.send("message", e, e.type);
  }

  async attach(req: IncomingMessage, res: ServerResponse, types: Set<string> | null): Promise<void> {
    this.follower ??= this.start();
    const started = this.follower;
    let follower: MessageFollower;
    try {
      ({ follower } = await started);
    } catch (err) {
      if (this.follower === started) this.follower = undefined;
      throw err;
    }
    // The last page left while this one waited, and the follower was stopped: start again.
    if (this.follower !== started) return this.attach(req, res, types);
    res.writeHead(200, {
      ...SECURITY_HEADERS,
      "Content-Type": "text/event-stream; charset=utf-8",
      Connection: "keep-alive",
    });
    const client: TailClient = { res, types, skipped: 0 };
    this.clients.add(client);
    res.write(
      `event: ready\ndata: ${JSON.stringify({ notifications: follower.notifications, types: types ? [...types] : [] })}\n\n`,
    );
    // Emitted once everything written has gone to the socket, after a write that found the buffer full.
    res.on("drain", () => this.caughtUp(client));
    const ping = setInterval(() => this.write(client, ": ping\n\n", false), 15_000);
    req.on("close", () => {
      clearInterval(ping);
      this.clients.delete(client);
      if (this.clients.size === 0) void this.stop();
    });
  }

  private async stop(): Promise<void> {
    const running = this.follower;
    this.follower = undefined;
    if (!running) return;
    try {
      const { follower, sub } = await running;
      await follower.close();
      sub.disconnect();
    } catch {
      // It never started: nothing to stop.
    }
  }

  async close(): Promise<void> {
    for (const client of this.clients) client.res.end();
    this.clients.clear();
    await this.stop();
  }
}
