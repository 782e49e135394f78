/**
 * The heartbeat thread (started once per process by src/heartbeat.ts with node:worker_threads).
 * For every system of the process it keeps `heartbeat:<node>` alive over a Redis connection of
 * its own, so a main event loop blocked by a synchronous handler does not make the process look
 * dead; it lives and dies with the process (SIGKILL ends it, SIGSTOP freezes it, like the main
 * thread).
 *
 * Plain JavaScript on purpose: the same file runs from src/ (tsx, vitest) and from dist/ (copied
 * there by scripts/copy-lua.mjs), with no TypeScript loader in the thread.
 *
 * On a Redis Cluster it opens an ioredis Cluster client on the same startup nodes; the heartbeat
 * script touches one key, so the client sends it to the master of that key's slot.
 *
 * From the main thread:
 *   { type: "add", id, connection, key, periodMs, ttlMs, offsetMs }, where connection is
 *     { kind: "server", options: ioredis options (cloneable), url?: a Redis URL } or
 *     { kind: "cluster", nodes: startup nodes, options: ioredis ClusterOptions (cloneable) }
 *     (src/connection.ts, ConnectionSpec)
 *   { type: "remove", id }              answered { type: "removed", id } once no beat can follow
 *   { type: "offset", id, offsetMs }    Redis' clock moved against the local one
 *   { type: "beat", id }                beat now (after a reconnect)
 * To the main thread, after each beat:
 *   { type: "beat", id, ok: true, refreshed: "set" | "created" } or
 *   { type: "beat", id, ok: false, error: string }
 * ("created": the key was gone and was written again: Redis lost data, FLUSHALL, a DEL).
 */
import { readFileSync } from "node:fs";
import { parentPort } from "node:worker_threads";
import { Cluster, Redis } from "ioredis";

/** src/lua/heartbeat.lua (dist/lua/heartbeat.lua once built): never refused over maxmemory. */
const HEARTBEAT_LUA = readFileSync(new URL("./lua/heartbeat.lua", import.meta.url), "utf8");

/**
 * Opens the thread's connection. A beat that cannot be sent now is a failed beat, not one to send
 * late: no offline queue, one attempt, and an answer within one period.
 * @param {{ kind: "server", options: object, url?: string } | { kind: "cluster", nodes: Array<string | number | object>, options: Record<string, any> }} connection
 * @param {number} periodMs
 * @returns {Redis | Cluster}
 */
function open(connection, periodMs) {
  const once = { maxRetriesPerRequest: 1, commandTimeout: periodMs };
  if (connection.kind === "cluster") {
    return new Cluster(connection.nodes, {
      ...connection.options,
      lazyConnect: false,
      enableOfflineQueue: false,
      redisOptions: { ...connection.options.redisOptions, ...once },
    });
  }
  const options = { ...connection.options, lazyConnect: false, enableOfflineQueue: false, ...once };
  return connection.url === undefined ? new Redis(options) : new Redis(connection.url, options);
}

/** One system's heartbeat key. */
class Beat {
  /** @param {{ id: number, connection: any, key: string, periodMs: number, ttlMs: number, offsetMs: number }} spec */
  constructor(spec) {
    this.id = spec.id;
    this.key = spec.key;
    this.ttlMs = spec.ttlMs;
    /** Redis' clock minus (performance.timeOrigin + performance.now()), ms. */
    this.offsetMs = spec.offsetMs;
    /** @type {Promise<void> | undefined} */
    this.inFlight = undefined;
    this.everReady = false;
    this.redis = open(spec.connection, spec.periodMs);
    this.redis.defineCommand("heartbeat", { numberOfKeys: 1, lua: HEARTBEAT_LUA });
    this.redis.on("error", () => {
      // ioredis reconnects by itself; a beat that fails meanwhile is reported.
    });
    this.redis.on("ready", () => {
      this.everReady = true;
      this.beat();
    });
    this.timer = setInterval(() => this.beat(), spec.periodMs);
  }

  /** @param {Record<string, unknown>} result */
  report(result) {
    parentPort?.postMessage({ type: "beat", id: this.id, ...result });
  }

  beat() {
    if (this.inFlight) return;
    if (this.redis.status !== "ready") {
      if (this.everReady)
        this.report({ ok: false, error: `the connection to Redis is ${this.redis.status}` });
      return;
    }
    this.inFlight = this.refresh().finally(() => {
      this.inFlight = undefined;
    });
  }

  /** Runs src/lua/heartbeat.lua: the key's value and lifetime, created again when it was gone. */
  async refresh() {
    const { redis, key, ttlMs } = this;
    try {
      const value = ((performance.timeOrigin + performance.now() + this.offsetMs) / 1000).toFixed(3);
      const code = await redis.heartbeat(key, value, ttlMs);
      this.report({ ok: true, refreshed: code === 2 ? "created" : "set" });
    } catch (err) {
      this.report({ ok: false, error: err instanceof Error ? err.message : String(err) });
    }
  }

  /** Stops beating; resolves once the beat in flight, if any, has been answered. */
  async close() {
    clearInterval(this.timer);
    await this.inFlight;
    this.redis.disconnect();
  }
}

/** @type {Map<number, Beat>} */
const beats = new Map();

parentPort?.on("message", (message) => {
  switch (message?.type) {
    case "add":
      beats.get(message.id)?.close();
      beats.set(message.id, new Beat(message));
      break;
    case "remove": {
      const beat = beats.get(message.id);
      beats.delete(message.id);
      void (beat ? beat.close() : Promise.resolve()).then(() =>
        parentPort?.postMessage({ type: "removed", id: message.id }),
      );
      break;
    }
    case "offset": {
      const beat = beats.get(message.id);
      if (beat && typeof message.offsetMs === "number") beat.offsetMs = message.offsetMs;
      break;
    }
    case "beat":
      beats.get(message.id)?.beat();
      break;
  }
});
