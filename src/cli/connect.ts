/**
 * Redis connections for the CLI, to one server or to a Redis Cluster: fail fast for one-shot
 * commands, reconnect for streams. A connection that cannot be opened says why, as createSystem
 * does (src/connection.ts).
 */
import { Cluster, type ClusterOptions, Redis, type RedisOptions } from "ioredis";
import type { Logger } from "pino";
import type { RedisClient } from "../cluster.js";
import { describeNodes, openClient, openRedis } from "../connection.js";
import { RedisUnavailableError } from "../errors.js";
import type { Keyspace } from "../keyspace.js";
import type { ActorSystem, ClusterConfig } from "../system.js";
import { CommandFailedError, UsageError } from "./errors.js";
import { redactUrl } from "./format.js";

/** Where the CLI connects: one server, by its URL, or a Redis Cluster, by its startup nodes. */
export type Target = { kind: "server"; url: string } | { kind: "cluster"; nodes: ClusterNodeUrl[] };

/** One startup node of a cluster, parsed from its URL. */
export interface ClusterNodeUrl {
  /** As given, for messages (the password is masked when shown). */
  url: string;
  host: string;
  port: number;
  tls: boolean;
  username?: string;
  password?: string;
}

/** The URL from `--redis`, else `REDIS_URL`, else the local default. */
export function resolveRedisUrl(option: string | undefined): string {
  const url = option ?? process.env.REDIS_URL ?? "redis://127.0.0.1:6379";
  if (url.startsWith("/")) return url; // a unix socket path, which ioredis accepts as is
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new UsageError(
      `"${redactUrl(url)}" is not a Redis URL; use redis://[user:password@]host:port[/db], rediss:// for TLS`,
    );
  }
  if (parsed.protocol !== "redis:" && parsed.protocol !== "rediss:") {
    throw new UsageError(`"${redactUrl(url)}" is not a Redis URL: it must start with redis:// or rediss://`);
  }
  return url;
}

/**
 * Parses a comma-separated list of cluster node URLs (`redis://host:port`, `rediss://` for TLS,
 * `redis://user:password@host:port` for an ACL user; a bare `host:port` means `redis://`).
 * @param from names where the list came from in messages: `--cluster` or `REDIS_CLUSTER`.
 * @throws UsageError when the list is empty, a node is not such a URL, names a database other
 *   than 0 (a cluster has only database 0), or the nodes mix `redis://` and `rediss://`.
 */
export function parseClusterNodes(list: string, from: string): ClusterNodeUrl[] {
  const urls = list
    .split(",")
    .map((u) => u.trim())
    .filter((u) => u !== "");
  if (urls.length === 0) {
    throw new UsageError(
      `${from} lists no node; give the cluster's nodes, comma-separated: redis://host:7000,redis://host:7001`,
    );
  }
  const nodes = urls.map((url): ClusterNodeUrl => {
    const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(url) ? url : `redis://${url}`;
    let parsed: URL;
    try {
      parsed = new URL(withScheme);
    } catch {
      throw new UsageError(
        `"${redactUrl(url)}" in ${from} is not a Redis URL; use redis://[user:password@]host:port, rediss:// for TLS`,
      );
    }
    if (parsed.protocol !== "redis:" && parsed.protocol !== "rediss:") {
      throw new UsageError(
        `"${redactUrl(url)}" in ${from} is not a Redis URL: it must start with redis:// or rediss://`,
      );
    }
    if (parsed.hostname === "") throw new UsageError(`"${redactUrl(url)}" in ${from} names no host`);
    const db = parsed.pathname.replace(/^\//, "");
    if (db !== "" && db !== "0") {
      throw new UsageError(
        `"${redactUrl(url)}" in ${from} names database ${db}, but a Redis Cluster has only database 0; leave it out`,
      );
    }
    return {
      url,
      host: parsed.hostname.replace(/^\[(.*)\]$/, "$1"),
      port: parsed.port === "" ? 6379 : Number(parsed.port),
      tls: parsed.protocol === "rediss:",
      ...(parsed.username ? { username: decodeURIComponent(parsed.username) } : {}),
      ...(parsed.password ? { password: decodeURIComponent(parsed.password) } : {}),
    };
  });
  if (new Set(nodes.map((n) => n.tls)).size > 1) {
    throw new UsageError(
      `the nodes in ${from} mix redis:// and rediss://; a cluster uses TLS on every node or none`,
    );
  }
  return nodes;
}

/**
 * Where to connect, from the command line and the environment: `--redis` (one server) and
 * `--cluster` (a Redis Cluster) exclude each other; `--redis` given explicitly wins over
 * `REDIS_CLUSTER`; without either, `REDIS_CLUSTER` when it is set (as createSystem reads it),
 * else `REDIS_URL`, else `redis://127.0.0.1:6379`.
 * @throws UsageError when both options are given or a URL is not valid.
 */
export function resolveTarget(options: { redis?: string; cluster?: string }): Target {
  if (options.redis !== undefined && options.cluster !== undefined) {
    throw new UsageError("give either --redis (one server) or --cluster (a Redis Cluster), not both");
  }
  if (options.redis !== undefined) return { kind: "server", url: resolveRedisUrl(options.redis) };
  if (options.cluster !== undefined)
    return { kind: "cluster", nodes: parseClusterNodes(options.cluster, "--cluster") };
  const env = process.env.REDIS_CLUSTER;
  if (env !== undefined && env.trim() !== "") {
    return { kind: "cluster", nodes: parseClusterNodes(env, "REDIS_CLUSTER") };
  }
  return { kind: "server", url: resolveRedisUrl(undefined) };
}

/** The target for messages, passwords masked: the URL, or `cluster host:port,host:port`. */
export function describeTarget(target: Target): string {
  if (target.kind === "server") return redactUrl(target.url);
  return `cluster ${describeNodes(target.nodes.map(({ host, port }) => ({ host, port })))}`;
}

/**
 * The per-node options every connection to the cluster's nodes needs: the user, password and
 * TLS of the first node URL that names them (ioredis connects to the nodes it discovers with
 * these, not with the startup URLs).
 */
function nodeOptions(nodes: readonly ClusterNodeUrl[]): RedisOptions {
  const auth = nodes.find((n) => n.password !== undefined || n.username !== undefined);
  return {
    ...(auth?.username !== undefined ? { username: auth.username } : {}),
    ...(auth?.password !== undefined ? { password: auth.password } : {}),
    ...(nodes[0]?.tls ? { tls: {} } : {}),
  };
}

/**
 * The connection options of a system the CLI starts (`ask`, `run`) on `target`: `{ redis: url }`
 * or `{ cluster: { nodes, redisOptions } }`. The one-server form is always explicit, so that
 * REDIS_CLUSTER in the environment does not send the system elsewhere than `--redis` says.
 */
export function systemConnection(target: Target): { redis: string } | { cluster: ClusterConfig } {
  if (target.kind === "server") return { redis: target.url };
  return {
    cluster: {
      nodes: target.nodes.map(({ host, port }) => ({ host, port })),
      redisOptions: nodeOptions(target.nodes),
    },
  };
}

/** Options of `connect`. */
export interface ConnectOptions {
  /**
   * Keep reconnecting after the first connection is made (for `tail`); one-shot commands
   * instead fail at once, so that a script is not left hanging.
   * @default false
   */
  reconnect?: boolean;
  /**
   * How long the first connection may take, ms (on a cluster: per node, plus 1 s to read the
   * slot map).
   * @default 5000
   */
  connectTimeoutMs?: number;
  /**
   * The connection will hold sharded subscriptions (SSUBSCRIBE): on a cluster ioredis then keeps
   * one subscriber connection per master. Plain subscriptions work either way.
   * @default false
   */
  sharded?: boolean;
}

/**
 * Connects to `url` (one server).
 * @throws RedisUnavailableError, or the subclass that names the cause (RedisAuthError,
 *   RedisTlsError, RedisMaxClientsError, RedisDatabaseError), with what to do; the same errors
 *   and messages as createSystem. No connection or reconnect timer is left behind.
 */
export async function connectRedis(url: string, options: ConnectOptions = {}): Promise<Redis> {
  let connected = false;
  const client = new Redis(url, {
    lazyConnect: true,
    connectTimeout: options.connectTimeoutMs ?? 5000,
    // ioredis waits this long for a closing socket; a CLI that is done should not.
    disconnectTimeout: 100,
    // One-shot commands should fail rather than queue forever behind a dead connection.
    maxRetriesPerRequest: options.reconnect ? null : 1,
    retryStrategy: (times) => (connected && options.reconnect ? Math.min(times * 200, 2000) : null),
  });
  // ioredis reports errors on the commands that need the connection; without a listener an
  // error event would crash the process with an unhelpful stack.
  client.on("error", () => {});
  await openRedis(client, redactUrl(url));
  connected = true;
  return client;
}

/**
 * Connects to a Redis Cluster through its startup nodes and reads its slot map.
 * @throws RedisUnavailableError (or the subclass that names the cause: password, TLS …) when no
 *   startup node answers or the cluster is not ready; nothing is left connected.
 */
export async function connectCluster(
  nodes: readonly ClusterNodeUrl[],
  options: ConnectOptions = {},
): Promise<Cluster> {
  let connected = false;
  const clusterOptions: ClusterOptions = {
    lazyConnect: true,
    // Before the first connection, and for one-shot commands, give up rather than retry.
    clusterRetryStrategy: (times) => (connected && options.reconnect ? Math.min(times * 200, 2000) : null),
    ...(options.sharded ? { shardedSubscribers: true } : {}),
    redisOptions: {
      ...nodeOptions(nodes),
      connectTimeout: options.connectTimeoutMs ?? 5000,
      disconnectTimeout: 100,
      maxRetriesPerRequest: options.reconnect ? null : 1,
    },
  };
  const client = new Cluster(
    nodes.map(({ host, port }) => ({ host, port })),
    clusterOptions,
  );
  client.on("error", () => {});
  await openClient(client, describeTarget({ kind: "cluster", nodes: [...nodes] }));
  connected = true;
  return client;
}

/**
 * Connects to `target`: `connectRedis` for one server, `connectCluster` for a cluster.
 * @throws as they do.
 */
export function connect(target: Target, options: ConnectOptions = {}): Promise<RedisClient> {
  return target.kind === "server" ? connectRedis(target.url, options) : connectCluster(target.nodes, options);
}

/** Closes a connection politely, or drops it when the server (or cluster) does not answer. */
export async function closeRedis(client: RedisClient | undefined): Promise<void> {
  if (!client || client.status === "end") return;
  try {
    await Promise.race([client.quit(), new Promise((_, reject) => setTimeout(reject, 500).unref())]);
  } catch {
    client.disconnect();
  }
}

/**
 * Starts a system for a command that needs one (`ask`, `run`, `dashboard`), on the command's
 * target and key layout. createSystem is loaded here rather than at the top, so that the other
 * commands start faster without it.
 * @throws CommandFailedError when Redis cannot be reached: its message names the cause (no server,
 *   password, certificate …) and what to do.
 */
export async function startCliSystem(
  target: Target,
  keys: Keyspace,
  appId: string,
  logger: Logger,
): Promise<ActorSystem> {
  const { createSystem } = await import("../system.js");
  try {
    return await createSystem({
      appId,
      ...systemConnection(target),
      keyspace: { hashTag: keys.hashTag },
      logger,
    });
  } catch (err) {
    if (err instanceof RedisUnavailableError) throw new CommandFailedError(err.message, { cause: err });
    throw err;
  }
}
