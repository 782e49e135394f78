/**
 * Redis connections for the CLI: fail fast for one-shot commands, reconnect for streams. A
 * connection that cannot be opened says why, as createSystem does (src/connection.ts).
 */
import { Redis } from "ioredis";
import { openRedis } from "../connection.js";
import { UsageError } from "./errors.js";
import { redactUrl } from "./format.js";

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

/** Options of `connectRedis`. */
export interface ConnectOptions {
  /**
   * Keep reconnecting after the first connection is made (for `tail`); one-shot commands
   * instead fail at once, so that a script is not left hanging.
   * @default false
   */
  reconnect?: boolean;
  /**
   * How long the first connection may take, ms.
   * @default 5000
   */
  connectTimeoutMs?: number;
}

/**
 * Connects to `url`.
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

/** Closes a connection politely, or drops it when the server does not answer. */
export async function closeRedis(client: Redis | undefined): Promise<void> {
  if (!client || client.status === "end") return;
  try {
    await Promise.race([client.quit(), new Promise((_, reject) => setTimeout(reject, 500).unref())]);
  } catch {
    client.disconnect();
  }
}
