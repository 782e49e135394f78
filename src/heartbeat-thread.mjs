/**
 * The heartbeat thread (started by src/heartbeat.ts with node:worker_threads). It keeps
 * `heartbeat:<node>` alive over its own Redis connection, so a main event loop blocked by a
 * synchronous handler does not make the process look dead; it lives and dies with the process
 * (SIGKILL ends it, SIGSTOP freezes it, like the main thread).
 *
 * Plain JavaScript on purpose: the same file runs from src/ (tsx, vitest) and from dist/ (copied
 * there by scripts/copy-lua.mjs), with no TypeScript loader in the thread.
 *
 * workerData: { redis: ioredis options (cloneable), key, periodMs, ttlMs, offsetMs }
 * From the main thread: { type: "offset", offsetMs } (Redis' clock moved), { type: "beat" } (now).
 * To the main thread: { type: "beat", ok: true, refreshed: "set" | "created" | "pexpire" } or
 *                     { type: "beat", ok: false, error: string }
 * ("created": the key was gone and was written again: Redis lost data, FLUSHALL, a DEL).
 */
import { parentPort, workerData } from "node:worker_threads";
import { Redis } from "ioredis";

const { redis: redisOptions, key, periodMs, ttlMs } = workerData;
/** Redis' clock minus (performance.timeOrigin + performance.now()), ms. */
let offsetMs = workerData.offsetMs;

const redis = new Redis({
  ...redisOptions,
  lazyConnect: false,
  // A beat that cannot be sent now is a failed beat, not one to send late.
  enableOfflineQueue: false,
  maxRetriesPerRequest: 1,
  commandTimeout: periodMs,
});
redis.on("error", () => {
  // ioredis reconnects by itself; a beat that fails meanwhile is reported.
});

let beating = false;
let everReady = false;

/** @param {Record<string, unknown>} message */
function report(message) {
  parentPort?.postMessage({ type: "beat", ...message });
}

/** @param {unknown} err */
function isOutOfMemory(err) {
  return err instanceof Error && err.message.startsWith("OOM");
}

/**
 * Refreshes the key: SET XX with its lifetime (SET when it was gone, reported as "created"), or,
 * when Redis refuses writes (OOM), PEXPIRE.
 */
async function beat() {
  if (beating) return;
  if (redis.status !== "ready") {
    if (everReady) report({ ok: false, error: `the connection to Redis is ${redis.status}` });
    return;
  }
  beating = true;
  try {
    const value = ((performance.timeOrigin + performance.now() + offsetMs) / 1000).toFixed(3);
    try {
      if ((await redis.set(key, value, "PX", ttlMs, "XX")) === "OK") {
        report({ ok: true, refreshed: "set" });
      } else {
        await redis.set(key, value, "PX", ttlMs);
        report({ ok: true, refreshed: "created" });
      }
    } catch (err) {
      if (!isOutOfMemory(err)) throw err;
      // Over maxmemory SET is refused (denyoom) but PEXPIRE is not: the key keeps living with its
      // last value. It cannot be created again while Redis refuses writes.
      if ((await redis.pexpire(key, ttlMs)) !== 1) {
        throw new Error(`${err.message} (the heartbeat key is gone and cannot be written again)`, {
          cause: err,
        });
      }
      report({ ok: true, refreshed: "pexpire" });
    }
  } catch (err) {
    report({ ok: false, error: err instanceof Error ? err.message : String(err) });
  } finally {
    beating = false;
  }
}

redis.on("ready", () => {
  everReady = true;
  void beat();
});
setInterval(() => void beat(), periodMs);

parentPort?.on("message", (message) => {
  if (message?.type === "offset" && typeof message.offsetMs === "number") offsetMs = message.offsetMs;
  else if (message?.type === "beat") void beat();
});
