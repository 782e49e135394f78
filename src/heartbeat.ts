/**
 * The heartbeat: `heartbeat:<node>` lives while this process does. It is kept by a worker thread
 * (src/heartbeat-thread.mjs, one per process, shared by its systems, each with a Redis connection
 * of its own), not by the main event loop, so a handler that blocks the loop for longer than the
 * key's lifetime is not taken for a dead process; the lease on its message, renewed by the main
 * thread, still bounds a hung handler. The thread is part of the process: SIGKILL ends both,
 * SIGSTOP freezes both (a frozen process may be taken for dead, rightly).
 *
 * Each beat runs src/lua/heartbeat.lua: the key gets the beat's time and a lifetime of three
 * periods, and is created again when it was gone (reported: Redis lost data). The script is
 * never refused over `maxmemory` (its first write is a PEXPIRE), so memory pressure never makes
 * a live process look dead. A beat that fails anyway (Redis unreachable) is reported to the
 * owner, which logs it and emits `heartbeat.failed`.
 *
 * Starting a system does not wait for the thread: the main thread writes the first beat itself,
 * and keeps beating (on its event loop) until the thread has beaten for it, and again whenever
 * the thread is gone, until it is back.
 *
 * On a Redis Cluster the thread opens a Cluster client of its own on the same nodes; the
 * heartbeat script touches one key, so it runs unchanged on the master of that key's slot.
 */
import { Worker } from "node:worker_threads";
import type { ClusterOptions, RedisOptions } from "ioredis";
import { monotonicWallMs } from "./clock.js";
import type { RedisClient } from "./cluster.js";
import type { ConnectionSpec } from "./connection.js";
import { HeartbeatError } from "./errors.js";
import { Scripts } from "./scripts.js";

/** How a heartbeat is set up. */
export interface HeartbeatOptions {
  /** The system's command connection: the first beat, and beats while the thread is away. */
  redis: RedisClient;
  /**
   * How the thread opens its own connection: one server, or a Redis Cluster (options that are
   * functions are dropped: not cloneable; see cloneableConnection).
   */
  thread: ConnectionSpec;
  /** The key to keep alive, `heartbeat:<node>`. */
  key: string;
  /** Period, ms; the key lives three periods. */
  periodMs: number;
  /** Redis' clock minus `monotonicWallMs()` (src/clock.ts), ms: the key's value is Redis' time. */
  offsetMs: number;
}

/** What one beat did. */
export type BeatResult =
  | {
      ok: true;
      /** `created`: the key was gone (Redis lost data, FLUSHALL, a DEL) and was written again. */
      refreshed: "set" | "created";
    }
  | { ok: false; error: string };

/** How the owner hears about beats. */
export interface HeartbeatListener {
  /** Every beat's result (the thread's, or the main thread's while the thread is away). */
  beat(result: BeatResult): void;
  /** The thread died; the main thread beats until a new one has. */
  threadFailed(error: Error): void;
}

/** The thread's entry, next to this file in src/ and in dist/. */
const THREAD_URL = new URL("./heartbeat-thread.mjs", import.meta.url);

/** How long after the thread died a new one is started, ms; doubled while it keeps dying. */
const THREAD_RESTART_MS = 1000;
/** The longest wait before starting the thread again, ms. */
const THREAD_RESTART_MAX_MS = 60_000;

/** How long the thread outlives its last heartbeat (a system started soon after reuses it), ms. */
const THREAD_IDLE_MS = 5000;

/** How long `stop` waits for the thread to confirm that no beat of this key can follow, ms. */
const REMOVE_TIMEOUT_MS = 2000;

/**
 * ioredis options, of one server or of a cluster, without what structured cloning cannot carry
 * (functions: retryStrategy, reconnectOnError, a TLS checkServerIdentity, a cluster's
 * clusterRetryStrategy, dnsLookup, a scaleReads or natMap function …; objects that are not plain,
 * such as a Connector class); the thread's client uses ioredis' defaults for those. A cluster's
 * `redisOptions` (the options of every node connection) are cleaned the same way.
 */
export function cloneableRedisOptions<T extends RedisOptions | ClusterOptions>(options: T): T {
  const out: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(options)) {
    if (typeof value === "function" || value === undefined) continue;
    if (name === "tls" && value && typeof value === "object") {
      out[name] = Object.fromEntries(Object.entries(value).filter(([, v]) => typeof v !== "function"));
    } else if (name === "redisOptions" && value && typeof value === "object" && isPlainObject(value)) {
      out[name] = cloneableRedisOptions(value as RedisOptions);
    } else if (value === null || typeof value !== "object" || Array.isArray(value) || isPlainObject(value)) {
      out[name] = value;
    }
  }
  return out as T;
}

/** A connection spec that structured cloning can carry to the thread (see cloneableRedisOptions). */
export function cloneableConnection(spec: ConnectionSpec): ConnectionSpec {
  if (spec.kind === "server") return { ...spec, options: cloneableRedisOptions(spec.options) };
  // Startup nodes are URLs, ports, or { host, port }: cloneable as they are.
  return { kind: "cluster", nodes: [...spec.nodes], options: cloneableRedisOptions(spec.options) };
}

function isPlainObject(value: object): boolean {
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

/** A message from the thread. */
type ThreadMessage = ({ type: "beat"; id: number } & BeatResult) | { type: "removed"; id: number };

/** The process's one heartbeat thread and the heartbeats it keeps. */
class HeartbeatThread {
  private worker: Worker | undefined;
  private readonly members = new Map<number, Heartbeat>();
  private readonly removals = new Map<number, () => void>();
  private restartTimer: NodeJS.Timeout | undefined;
  private restartDelayMs = THREAD_RESTART_MS;
  private lastError: Error | undefined;
  private idleTimer: NodeJS.Timeout | undefined;

  add(member: Heartbeat): void {
    clearTimeout(this.idleTimer);
    this.idleTimer = undefined;
    this.members.set(member.id, member);
    this.post({ type: "add", ...member.spec() });
  }

  /** Stops beating for `member`; resolves once the thread confirms no beat can follow. */
  async remove(member: Heartbeat): Promise<void> {
    if (!this.members.delete(member.id)) return;
    const worker = this.worker;
    if (!worker) return;
    const removed = new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, REMOVE_TIMEOUT_MS);
      this.removals.set(member.id, () => {
        clearTimeout(timer);
        resolve();
      });
    });
    worker.postMessage({ type: "remove", id: member.id });
    await removed;
    this.removals.delete(member.id);
    if (this.members.size === 0 && this.worker === worker && !this.idleTimer) {
      // Nothing left to keep: the thread goes after a while (a later system starts a new one).
      this.idleTimer = setTimeout(() => {
        this.idleTimer = undefined;
        if (this.members.size > 0 || this.worker !== worker) return;
        this.worker = undefined;
        void worker.terminate();
      }, THREAD_IDLE_MS);
      this.idleTimer.unref();
    }
  }

  post(message: { type: string; id: number; [field: string]: unknown }): void {
    this.ensure().postMessage(message);
  }

  private ensure(): Worker {
    if (this.worker) return this.worker;
    const worker = new Worker(THREAD_URL, {
      // Plain JavaScript: no loader (tsx, vitest) is needed in the thread, and none is inherited.
      execArgv: [],
      // A thread that only beats needs little memory.
      resourceLimits: { maxOldGenerationSizeMb: 32, maxYoungGenerationSizeMb: 8 },
    });
    worker.on("message", (message: ThreadMessage) => {
      if (message.type === "removed") {
        this.removals.get(message.id)?.();
      } else if (message.type === "beat") {
        if (message.ok) this.restartDelayMs = THREAD_RESTART_MS;
        this.members.get(message.id)?.threadBeat(message);
      }
    });
    worker.on("error", (err) => {
      this.lastError = err;
    });
    worker.on("exit", (code) => {
      if (this.worker !== worker) return;
      this.worker = undefined;
      for (const resolve of this.removals.values()) resolve();
      if (this.members.size === 0) return;
      const cause = this.lastError;
      this.lastError = undefined;
      const err = new HeartbeatError(
        `the heartbeat thread exited (code ${code}${cause ? `: ${cause.message}` : ""}); ` +
          `the main thread beats until it is back, in ${this.restartDelayMs} ms` +
          (cause?.message.includes("heartbeat-thread.mjs")
            ? "; heartbeat-thread.mjs must sit next to heartbeat.js (npm run build copies it into dist/)"
            : ""),
        { cause },
      );
      for (const member of this.members.values()) member.threadLost(err);
      clearTimeout(this.restartTimer);
      this.restartTimer = setTimeout(() => {
        for (const member of this.members.values()) this.post({ type: "add", ...member.spec() });
      }, this.restartDelayMs);
      this.restartTimer.unref();
      this.restartDelayMs = Math.min(this.restartDelayMs * 2, THREAD_RESTART_MAX_MS);
    });
    // The thread never keeps the process alive: it ends with the main thread. (After the
    // listeners: adding a "message" listener refs the worker again.)
    worker.unref();
    this.worker = worker;
    return worker;
  }
}

const thread = new HeartbeatThread();

let heartbeats = 0;

/** One system's heartbeat, kept by the process's heartbeat thread. */
export class Heartbeat {
  readonly id: number;
  private offsetMs: number;
  private backupTimer: NodeJS.Timeout | undefined;
  /** The thread has beaten for this key since it was (re)added. */
  private threadBeating = false;
  private stopped = true;
  /** The heartbeat script on the system's connection, for beats from the event loop. */
  private scripts: Scripts | undefined;

  constructor(
    private readonly options: HeartbeatOptions,
    private readonly listener: HeartbeatListener,
  ) {
    heartbeats += 1;
    this.id = heartbeats;
    this.offsetMs = options.offsetMs;
  }

  /** What the thread needs to keep this key. */
  spec(): {
    id: number;
    connection: ConnectionSpec;
    key: string;
    periodMs: number;
    ttlMs: number;
    offsetMs: number;
  } {
    return {
      id: this.id,
      connection: cloneableConnection(this.options.thread),
      key: this.options.key,
      periodMs: this.options.periodMs,
      ttlMs: this.options.periodMs * 3,
      offsetMs: this.offsetMs,
    };
  }

  /**
   * Writes the first beat from the main thread, then hands the key to the heartbeat thread.
   * Throws HeartbeatError (with the cause: NOPERM, OOM, …) when the first beat fails.
   */
  async start(): Promise<void> {
    const first = await this.beatFromMain();
    if (!first.ok) throw new HeartbeatError(`the first heartbeat failed: ${first.error}`);
    this.stopped = false;
    this.threadBeating = false;
    this.startBackup();
    try {
      thread.add(this);
    } catch (err) {
      // No thread (its file is missing): the main thread keeps beating, and says so.
      this.threadLost(
        new HeartbeatError(
          `the heartbeat thread cannot start: ${(err as Error).message}; heartbeat-thread.mjs must ` +
            "sit next to heartbeat.js (npm run build copies it into dist/)",
          { cause: err },
        ),
      );
    }
  }

  /** A beat of the thread for this key. */
  threadBeat(result: BeatResult): void {
    if (this.stopped) return;
    if (result.ok && !this.threadBeating) {
      this.threadBeating = true;
      this.stopBackup();
    }
    this.listener.beat(result);
  }

  /** The thread is gone: beat from the main thread until a new one has beaten. */
  threadLost(err: Error): void {
    if (this.stopped) return;
    this.threadBeating = false;
    this.startBackup();
    this.listener.threadFailed(err);
  }

  private startBackup(): void {
    if (this.backupTimer) return;
    this.backupTimer = setInterval(() => {
      if (this.threadBeating || this.stopped) return;
      void this.beatFromMain().then((result) => {
        if (!this.threadBeating && !this.stopped) this.listener.beat(result);
      });
    }, this.options.periodMs);
    this.backupTimer.unref();
  }

  private stopBackup(): void {
    clearInterval(this.backupTimer);
    this.backupTimer = undefined;
  }

  /** One beat over the system's command connection (the thread's script, on the event loop). */
  private async beatFromMain(): Promise<BeatResult> {
    const { redis, key, periodMs } = this.options;
    const value = ((monotonicWallMs() + this.offsetMs) / 1000).toFixed(3);
    try {
      this.scripts ??= new Scripts(redis);
      const code = Number(await this.scripts.run("heartbeat", [key], [value, periodMs * 3]));
      return { ok: true, refreshed: code === 2 ? "created" : "set" };
    } catch (err) {
      return { ok: false, error: err instanceof Error ? err.message : String(err) };
    }
  }

  /** Redis' clock moved against the local one: the key's value follows. */
  setOffset(offsetMs: number): void {
    this.offsetMs = offsetMs;
    if (!this.stopped) thread.post({ type: "offset", id: this.id, offsetMs });
  }

  /** Beats now (after a reconnect) instead of at the next period. */
  beatNow(): void {
    if (this.stopped) return;
    if (this.threadBeating) thread.post({ type: "beat", id: this.id });
    else void this.beatFromMain().then((result) => this.listener.beat(result));
  }

  /** Stops beating; no beat of this key is sent after this resolves (Redis is not touched). */
  async stop(): Promise<void> {
    this.stopped = true;
    this.stopBackup();
    await thread.remove(this);
  }
}
