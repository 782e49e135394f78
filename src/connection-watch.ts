/**
 * Watching a system's Redis connections for drops and recoveries, so that a person reading the
 * log (and a listener of `system.events`) learns once per outage that Redis went away, why, and
 * when it came back. ioredis reconnects by itself and says so through events: `close` when the
 * socket goes (also again after each failed attempt), `error` with the cause (ECONNRESET before a
 * drop, ECONNREFUSED for each attempt while the server is down), and `ready` once it is usable
 * again. A Redis Cluster client emits `close` and `ready` for the cluster as a whole, and
 * `node error` for one node's failures. One outage gives one `redis.disconnected` and one
 * `redis.reconnected`, however many attempts it took.
 */
import type { Logger } from "pino";
import type { RedisClient } from "./cluster.js";
import type { SystemEventEmitter } from "./events.js";

/** Which of a system's two connections: commands and scripts, or pub/sub. */
export type ConnectionRole = "commands" | "subscriber";

/** An error this recent (ms) before a `close` is taken for its cause. */
const CAUSE_WINDOW_MS = 2000;

/** What a `close` without a recent error is reported as. */
const NO_CAUSE = "the connection was closed (Redis stopped, restarted, or the network dropped it)";

/** Stops watching. */
export type Unwatch = () => void;

/**
 * Follows `client` (connected, `ready`, when called): at the first `close` after being ready,
 * logs a warning and emits `redis.disconnected` with the cause (the error seen just before, else
 * that the connection was closed); at the next `ready`, logs at info and emits
 * `redis.reconnected` with how long it was down and the last error while down. Returns the
 * function that stops watching; call it before closing the connection on purpose.
 */
export function watchConnection(
  client: RedisClient,
  connection: ConnectionRole,
  log: Logger,
  events: SystemEventEmitter,
): Unwatch {
  let downSince: number | undefined;
  let lastError: { message: string; at: number } | undefined;
  let errorWhileDown = "";
  const onError = (err: Error) => {
    const message = err?.message ?? String(err);
    lastError = { message, at: Date.now() };
    if (downSince !== undefined) errorWhileDown = message;
  };
  const onNodeError = (err: Error, node?: string) =>
    onError(new Error(node ? `${node}: ${err.message}` : err.message));
  const onClose = () => {
    if (downSince !== undefined) return;
    downSince = Date.now();
    const error = lastError && downSince - lastError.at <= CAUSE_WINDOW_MS ? lastError.message : NO_CAUSE;
    errorWhileDown = "";
    log.warn({ connection, error }, `lost the Redis connection (${connection}): ${error}; reconnecting`);
    events.emit("redis.disconnected", { connection, error });
  };
  const onReady = () => {
    if (downSince === undefined) return;
    const downMs = Date.now() - downSince;
    const error = errorWhileDown;
    downSince = undefined;
    log.info(
      { connection, downMs, error: error || undefined },
      `reconnected to Redis (${connection}) after ${downMs} ms`,
    );
    events.emit("redis.reconnected", { connection, downMs, error });
  };
  client.on("error", onError);
  client.on("node error", onNodeError);
  client.on("close", onClose);
  client.on("ready", onReady);
  return () => {
    client.off("error", onError);
    client.off("node error", onNodeError);
    client.off("close", onClose);
    client.off("ready", onReady);
  };
}
