/**
 * Opening a Redis connection, and saying why one could not be opened. ioredis' `connect()` only
 * rejects with "Connection is closed."; the real cause (NOAUTH, WRONGPASS, a certificate, …)
 * comes as an "error" event, and after an AUTH or TLS failure ioredis reconnects for ever. A
 * database index that does not exist is only an "error" event, and the connection then goes on
 * in database 0; and a server at its `maxclients` limit closes the socket before ioredis reads
 * its greeting. `openRedis` turns each of these into a typed error (src/errors.ts) that names the
 * cause and what to do, keeps the original as `cause`, and leaves no connection or reconnect
 * timer behind.
 */
import { connect as netConnect, type Socket } from "node:net";
import { connect as tlsConnect } from "node:tls";
import { Cluster, type ClusterNode, type ClusterOptions, Redis, type RedisOptions } from "ioredis";
import type { RedisClient } from "./cluster.js";
import {
  RedisAuthError,
  RedisDatabaseError,
  RedisMaxClientsError,
  RedisTlsError,
  RedisUnavailableError,
} from "./errors.js";

/** Where the Redis URL is set, for the advice in messages. */
export const REDIS_URL_SETTING = "REDIS_URL, createSystem's redis option, or the CLI's --redis";

/** The server a connection goes to, for messages: the URL without its password, or host:port. */
export function describeTarget(option: string | RedisOptions | undefined, url: string | undefined): string {
  if (typeof option === "object") {
    if (option.path) return option.path;
    return `${option.tls ? "rediss" : "redis"}://${option.host ?? "127.0.0.1"}:${option.port ?? 6379}/${option.db ?? 0}`;
  }
  return (url ?? "").replace(/\/\/[^@/]*@/, "//***@");
}

// Node's codes for a certificate the client does not trust or that does not name the host.
const CERTIFICATE_CODES = new Set([
  "DEPTH_ZERO_SELF_SIGNED_CERT",
  "SELF_SIGNED_CERT_IN_CHAIN",
  "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
  "UNABLE_TO_GET_ISSUER_CERT",
  "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
  "CERT_HAS_EXPIRED",
  "CERT_NOT_YET_VALID",
  "CERT_UNTRUSTED",
  "CERT_REJECTED",
  "CERT_SIGNATURE_FAILURE",
  "ERR_TLS_CERT_ALTNAME_INVALID",
]);

/** Network errors that say nothing about why the server hung up. */
const SILENT_CLOSE =
  /^(Connection is closed\.|write EPIPE|read ECONNRESET|write ECONNRESET|Socket closed unexpectedly)/;

const MAX_CLIENTS = "max number of clients reached";

function codeOf(err: Error): string {
  return String((err as NodeJS.ErrnoException).code ?? "");
}

/**
 * The typed error for one error reported while connecting, or null when it says nothing
 * about the cause (a socket closed without a word).
 */
export function classifyConnectError(err: Error, where: string, tls = false): RedisUnavailableError | null {
  const text = err.message;
  const code = codeOf(err);
  if (text.includes("WRONGPASS")) {
    return new RedisAuthError(
      `Redis at ${where} rejected the user name or password (WRONGPASS); check them in the Redis URL, ` +
        `redis://USER:PASSWORD@host:port or redis://:PASSWORD@host:port for the default user (${REDIS_URL_SETTING})`,
      { cause: err },
    );
  }
  if (text.includes("NOAUTH")) {
    return new RedisAuthError(
      `Redis at ${where} requires a password and none was given (NOAUTH); put it in the Redis URL, ` +
        `redis://:PASSWORD@host:port or redis://USER:PASSWORD@host:port (${REDIS_URL_SETTING})`,
      { cause: err },
    );
  }
  if (text.includes("NOPERM")) {
    return new RedisAuthError(
      `the Redis user may not run a command redactor needs at ${where} (${text}); ` +
        "grant the permissions the README lists for redactor's ACL user, or connect as another user",
      { cause: err },
    );
  }
  if (text.includes(MAX_CLIENTS)) return maxClients(where, err);
  if (CERTIFICATE_CODES.has(code)) {
    const advice =
      code === "ERR_TLS_CERT_ALTNAME_INVALID"
        ? "connect by a host name the certificate lists, or set tls.servername in the redis options"
        : "give the client the CA that signed it: redis: { host, port, tls: { ca: readFileSync('ca.pem') } } " +
          "in createSystem, or NODE_EXTRA_CA_CERTS=ca.pem for any program (the CLI too)";
    return new RedisTlsError(
      `the TLS certificate of Redis at ${where} is not trusted (${code}: ${text}); ${advice}`,
      { cause: err },
    );
  }
  if (
    code === "EPROTO" ||
    code.startsWith("ERR_SSL") ||
    /wrong version number|packet length too long/.test(text)
  ) {
    return new RedisTlsError(
      `Redis at ${where} does not speak TLS on that port (${text}); use redis:// instead of rediss://, ` +
        "or the server's tls-port",
      { cause: err },
    );
  }
  if (code === "ENOTFOUND" || code === "EAI_AGAIN") {
    return new RedisUnavailableError(
      `cannot reach Redis at ${where}: the host name is not found (${text}); check the host in ${REDIS_URL_SETTING}`,
      { cause: err },
    );
  }
  if (SILENT_CLOSE.test(text)) return null;
  return new RedisUnavailableError(
    `cannot reach Redis at ${where} (${text}); start redis-server there, or set the Redis URL to your server ` +
      `(${REDIS_URL_SETTING})${code === "ETIMEDOUT" && tls ? "; if that server does not use TLS, use redis:// instead of rediss://" : ""}`,
    { cause: err },
  );
}

function maxClients(where: string, cause: Error): RedisMaxClientsError {
  return new RedisMaxClientsError(
    `Redis at ${where} refuses new connections: it has reached its maxclients limit (ERR ${MAX_CLIENTS}); ` +
      "close idle clients (CLIENT LIST shows them) or raise maxclients in redis.conf; " +
      "each redactor system takes 2 connections",
    { cause },
  );
}

/**
 * What a server says on a fresh connection before it is asked anything: nothing, normally; a
 * server at its `maxclients` limit writes an error and hangs up. Resolves with that first line,
 * or null, within `timeoutMs`.
 */
export function readGreeting(options: RedisOptions, timeoutMs = 500): Promise<string | null> {
  return new Promise((resolve) => {
    let data = "";
    let socket: Socket;
    const done = () => {
      clearTimeout(timer);
      socket.destroy();
      const line = data.split("\r\n")[0] ?? "";
      resolve(line === "" ? null : line);
    };
    const timer = setTimeout(done, timeoutMs);
    const host = options.host ?? "127.0.0.1";
    const port = options.port ?? 6379;
    if (options.path) socket = netConnect(options.path);
    else if (options.tls) socket = tlsConnect({ ...options.tls, host, port });
    else socket = netConnect({ host, port });
    socket.setEncoding("utf8");
    socket.on("data", (chunk: string) => {
      data += chunk;
      if (data.includes("\r\n")) done();
    });
    socket.on("error", done);
    socket.on("close", done);
  });
}

/**
 * The error to throw for a connection that could not be opened, from what ioredis reported
 * while trying (`errors`, oldest first). When none of them names the cause, the server's own
 * greeting is read on a fresh socket (a server at its maxclients limit says so).
 */
export async function explainConnectFailure(
  errors: readonly Error[],
  where: string,
  options: RedisOptions,
): Promise<RedisUnavailableError> {
  for (const err of errors) {
    const explained = classifyConnectError(err, where, Boolean(options.tls));
    if (explained) return explained;
  }
  const last =
    errors.find((e) => e.message !== "Connection is closed.") ?? errors.at(-1) ?? new Error("closed");
  const greeting = await readGreeting(options);
  if (greeting?.includes(MAX_CLIENTS))
    return maxClients(where, new Error(greeting.slice(1), { cause: last }));
  if (greeting?.startsWith("-")) {
    return new RedisUnavailableError(`Redis at ${where} refused the connection (${greeting.slice(1)})`, {
      cause: last,
    });
  }
  return new RedisUnavailableError(
    `cannot reach Redis at ${where}: the server closed the connection (${last.message}); ` +
      `check that a Redis server listens there${options.tls ? "" : " (use rediss:// if it expects TLS)"}, ` +
      `or set the Redis URL to your server (${REDIS_URL_SETTING})`,
    { cause: last },
  );
}

/**
 * Checks that the connection uses the database its options name: ioredis only reports a SELECT
 * that failed as an "error" event and goes on in database 0.
 */
async function checkDatabase(client: Redis, where: string): Promise<void> {
  const db = Number(client.options.db ?? 0);
  if (db === 0) return;
  try {
    await client.select(db);
  } catch (err) {
    let count = "";
    try {
      const [, n] = (await client.config("GET", "databases")) as string[];
      if (n !== undefined) count = `; it has ${n}, numbered 0 to ${Number(n) - 1}`;
    } catch {
      // CONFIG may be disabled (managed Redis): the message goes without the count.
    }
    throw new RedisDatabaseError(
      `Redis at ${where} has no database ${db} (${(err as Error).message})${count}; ` +
        `use an existing index in the URL, redis://host:port/<db> (${REDIS_URL_SETTING}), ` +
        "or raise databases in redis.conf",
      { cause: err },
    );
  }
}

/**
 * Connects `client` (created with `lazyConnect: true`) and checks its database index.
 * @param where the server, for messages (see describeTarget).
 * @throws RedisAuthError, RedisTlsError, RedisMaxClientsError, RedisDatabaseError, or
 *   RedisUnavailableError, with ioredis' error as `cause`; the client is then disconnected
 *   (no reconnect timer is left).
 */
export async function openRedis(client: Redis, where: string): Promise<void> {
  // ioredis bounds the TCP connect (connectTimeout), not the first answers: a server that accepts
  // the connection and never replies (stopped, paused, or not Redis) would hang here for ever.
  const limitMs = client.options.connectTimeout ?? 10_000;
  let timer: NodeJS.Timeout | undefined;
  const silent = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      client.disconnect();
      reject(
        new RedisUnavailableError(
          `Redis at ${where} accepted the connection but did not answer within ${limitMs} ms; ` +
            "check that it is a Redis server and that it is not stopped or paused (CLIENT PAUSE), " +
            "or raise connectTimeout",
        ),
      );
    }, limitMs);
  });
  try {
    await Promise.race([connectAndCheck(client, where), silent]);
  } finally {
    clearTimeout(timer);
  }
}

async function connectAndCheck(client: Redis, where: string): Promise<void> {
  const seen: Error[] = [];
  const record = (err: Error) => {
    seen.push(err);
  };
  client.on("error", record);
  try {
    try {
      await client.connect();
    } catch (err) {
      client.disconnect();
      throw await explainConnectFailure([...seen, err as Error], where, client.options);
    }
    try {
      await checkDatabase(client, where);
    } catch (err) {
      client.disconnect();
      throw err;
    }
  } finally {
    client.off("error", record);
  }
}

/**
 * The error to throw when a connected client's first commands failed: a refused permission
 * (NOPERM) or authentication (NOAUTH) becomes RedisAuthError saying what to do; anything else is
 * returned as it is.
 */
export function explainCommandFailure(err: unknown, where: string): unknown {
  if (!(err instanceof Error) || !/NOPERM|NOAUTH|WRONGPASS/.test(err.message)) return err;
  return classifyConnectError(err, where) ?? err;
}

/**
 * The CLIENT SETNAME name of one of an app's connections, `redactor:<appId>` or
 * `redactor:<appId>:<role>`. Redis refuses names with spaces or characters outside `!`…`~` (and
 * ioredis drops that refusal silently), so any such character of the app id becomes `_`.
 */
export function connectionName(appId: string, role?: string): string {
  const safe = appId.replace(/[^!-~]/gu, "_");
  return role ? `redactor:${safe}:${role}` : `redactor:${safe}`;
}

/**
 * How to open a connection: to one server (ioredis options), or to a Redis Cluster (startup
 * nodes and ioredis' ClusterOptions, whose `redisOptions` apply to every node connection).
 * Structured-cloneable once functions are dropped, so the heartbeat thread can open its own.
 */
export type ConnectionSpec =
  | { kind: "server"; options: RedisOptions /** A Redis URL, read before `options`. */; url?: string }
  | { kind: "cluster"; nodes: ClusterNode[]; options: ClusterOptions };

/**
 * The spec of a connection like `client`'s (one server: its options as ioredis parsed them from
 * the URL), for another thread to open its own.
 */
export function specOf(client: RedisClient, spec: ConnectionSpec): ConnectionSpec {
  return client instanceof Redis ? { kind: "server", options: client.options } : spec;
}

/**
 * A client for `spec`, not connected yet (`lazyConnect`); open it with `openClient`. `name` is
 * the CLIENT SETNAME of its connections (see connectionName).
 */
export function createClient(spec: ConnectionSpec, name: string): RedisClient {
  if (spec.kind === "server") {
    const options = { ...spec.options, lazyConnect: true, connectionName: name };
    return spec.url === undefined ? new Redis(options) : new Redis(spec.url, options);
  }
  return new Cluster(spec.nodes, {
    ...spec.options,
    lazyConnect: true,
    redisOptions: { ...spec.options.redisOptions, connectionName: name },
  });
}

/**
 * A duplicate of the spec's client for subscriptions: on a cluster it also holds sharded
 * subscriptions, and reads the slot map every second: the server drops a sharded subscription
 * when its slot moves, and ioredis subscribes again only once it has seen the new map.
 */
export function subscriberSpec(spec: ConnectionSpec): ConnectionSpec {
  if (spec.kind === "server") return spec;
  return {
    ...spec,
    options: { slotsRefreshInterval: 1000, ...spec.options, shardedSubscribers: true },
  };
}

/**
 * Connects a client made by `createClient`: one server with `openRedis`; a cluster by
 * connecting to its startup nodes and reading its slot map, bounded by the nodes'
 * `connectTimeout`.
 * @throws RedisUnavailableError (or a subclass naming the cause); nothing is left connected.
 */
export async function openClient(client: RedisClient, where: string): Promise<void> {
  if (client instanceof Redis) return openRedis(client, where);
  const limitMs = (client.options.redisOptions?.connectTimeout ?? 10_000) + 1000;
  const seen: Error[] = [];
  const record = (err: Error) => {
    seen.push(err);
  };
  client.on("error", record);
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      client.connect(),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer within ${limitMs} ms`)), limitMs);
      }),
    ]);
  } catch (err) {
    client.disconnect();
    const causes = [...seen, err as Error].flatMap((e) => {
      const last = (e as { lastNodeError?: Error }).lastNodeError;
      return last ? [last, e] : [e];
    });
    for (const cause of causes) {
      // Only a cause that names what to fix (a password, TLS, maxclients); a node that cannot
      // be reached gets the cluster's advice below.
      const explained = classifyConnectError(cause, where);
      if (explained && explained.constructor !== RedisUnavailableError) throw explained;
    }
    throw new RedisUnavailableError(
      `cannot reach the Redis Cluster at ${where} (${(err as Error).message}); check that its nodes are up ` +
        `and that cluster_state is ok (redis-cli -c -p <port> cluster info), or fix the nodes in ${CLUSTER_SETTING}`,
      { cause: err },
    );
  } finally {
    clearTimeout(timer);
    client.off("error", record);
  }
}

/** Where the cluster's nodes are set, for the advice in messages. */
export const CLUSTER_SETTING = "REDIS_CLUSTER, createSystem's cluster option, or the CLI's --cluster";

/** The startup nodes of a cluster, for messages: `host:port,host:port`, passwords left out. */
export function describeNodes(nodes: readonly ClusterNode[]): string {
  return nodes
    .map((node) => {
      if (typeof node === "number") return `127.0.0.1:${node}`;
      if (typeof node === "string") return node.replace(/\/\/[^@/]*@/, "//***@");
      return `${node.host ?? "127.0.0.1"}:${node.port ?? 6379}`;
    })
    .join(",");
}
