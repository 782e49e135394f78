/**
 * The heartbeat: `heartbeat:<node>` lives while this process does. It is kept by a worker thread
 * (src/heartbeat-thread.mjs) with its own Redis connection, not by the main event loop, so a
 * handler that blocks the loop for longer than the key's lifetime is not taken for a dead
 * process; the lease on its message, renewed by the main thread, still bounds a hung handler.
 * The thread is part of the process: SIGKILL ends both, SIGSTOP freezes both (a frozen process
 * may be taken for dead, rightly).
 *
 * Each beat is `SET key <Redis time> PX <3 periods> XX` (a plain SET when the key was gone, which
 * is reported: Redis lost data); when Redis is over `maxmemory` and refuses writes, `PEXPIRE`
 * (which it does not refuse) keeps the key alive. A beat that fails anyway is
 * reported to the owner, which logs it and emits `heartbeat.failed`.
 */
import { Worker } from "node:worker_threads";
import type { RedisOptions } from "ioredis";
import { HeartbeatError } from "./errors.js";

/** How a heartbeat thread is set up. */
export interface HeartbeatOptions {
  /** Connection options of the thread's own connection (functions are dropped: not cloneable). */
  redis: RedisOptions;
  /** The key to keep alive, `heartbeat:<node>`. */
  key: string;
  /** Period, ms; the key lives three periods. */
  periodMs: number;
  /** Redis' clock minus `monotonicWallMs()` (src/clock.ts), ms: the key's value is Redis' time. */
  offsetMs: number;
}

/** What one beat did, as the thread reports it. */
export type BeatResult =
  | {
      ok: true;
      /** `created`: the key was gone (Redis lost data, FLUSHALL, a DEL) and was written again. */
      refreshed: "set" | "created" | "pexpire";
    }
  | { ok: false; error: string };

/** How the owner hears about beats. */
export interface HeartbeatListener {
  /** Every beat's result. */
  beat(result: BeatResult): void;
  /** The thread died (it is started again after one period). */
  threadFailed(error: Error): void;
}

/** The thread's entry, next to this file in src/ and in dist/. */
const THREAD_URL = new URL("./heartbeat-thread.mjs", import.meta.url);

/** The thread must report its first beat within this time, ms. */
const START_TIMEOUT_MS = 10_000;

/**
 * ioredis options without what structured cloning cannot carry (functions: retryStrategy,
 * reconnectOnError, a TLS checkServerIdentity …); the thread's client uses ioredis' defaults for
 * those.
 */
export function cloneableRedisOptions(options: RedisOptions): RedisOptions {
  const out: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(options)) {
    if (typeof value === "function" || value === undefined) continue;
    if (name === "tls" && value && typeof value === "object") {
      out[name] = Object.fromEntries(Object.entries(value).filter(([, v]) => typeof v !== "function"));
    } else if (value === null || typeof value !== "object" || Array.isArray(value) || isPlainObject(value)) {
      out[name] = value;
    }
  }
  return out as RedisOptions;
}

function isPlainObject(value: object): boolean {
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

/** A heartbeat kept by a worker thread. */
export class Heartbeat {
  private worker: Worker | undefined;
  private stopped = false;
  private restartTimer: NodeJS.Timeout | undefined;
  private offsetMs: number;

  constructor(
    private readonly options: HeartbeatOptions,
    private readonly listener: HeartbeatListener,
  ) {
    this.offsetMs = options.offsetMs;
  }

  /**
   * Starts the thread and resolves after its first successful beat. Throws HeartbeatError when
   * the thread cannot start or its first beat fails (the thread is then stopped).
   */
  async start(): Promise<void> {
    this.stopped = false;
    const worker = this.spawn();
    try {
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new HeartbeatError(`the heartbeat thread did not beat within ${START_TIMEOUT_MS} ms`)),
          START_TIMEOUT_MS,
        );
        const done = (err?: Error) => {
          clearTimeout(timer);
          worker.off("message", onMessage);
          worker.off("error", onError);
          if (err) reject(err);
          else resolve();
        };
        const onMessage = (message: { type?: string } & Partial<BeatResult>) => {
          if (message.type !== "beat") return;
          if (message.ok) done();
          else
            done(new HeartbeatError(`the first heartbeat failed: ${(message as { error: string }).error}`));
        };
        const onError = (err: Error) =>
          done(
            new HeartbeatError(
              `the heartbeat thread failed to start: ${err.message}; heartbeat-thread.mjs must sit next ` +
                "to heartbeat.js (npm run build copies it into dist/)",
              { cause: err },
            ),
          );
        worker.on("message", onMessage);
        worker.on("error", onError);
      });
    } catch (err) {
      await this.stop();
      throw err;
    }
  }

  private spawn(): Worker {
    const worker = new Worker(THREAD_URL, {
      workerData: {
        redis: cloneableRedisOptions(this.options.redis),
        key: this.options.key,
        periodMs: this.options.periodMs,
        ttlMs: this.options.periodMs * 3,
        offsetMs: this.offsetMs,
      },
      // Plain JavaScript: no loader (tsx, vitest) is needed in the thread, and none is inherited.
      execArgv: [],
      // A thread that only beats needs little memory.
      resourceLimits: { maxOldGenerationSizeMb: 32, maxYoungGenerationSizeMb: 8 },
    });
    // The thread never keeps the process alive: it ends with the main thread.
    worker.unref();
    worker.on("message", (message: { type?: string } & BeatResult) => {
      if (message.type === "beat") this.listener.beat(message);
    });
    worker.on("error", (err) => this.listener.threadFailed(err));
    worker.on("exit", () => {
      if (this.worker !== worker) return;
      this.worker = undefined;
      if (this.stopped) return;
      // The key outlives one period by two: a new thread started now keeps it alive.
      this.restartTimer = setTimeout(() => {
        if (!this.stopped && !this.worker) this.spawn();
      }, this.options.periodMs);
      this.restartTimer.unref();
    });
    this.worker = worker;
    return worker;
  }

  /** Redis' clock moved against the local one: the key's value follows. */
  setOffset(offsetMs: number): void {
    this.offsetMs = offsetMs;
    this.worker?.postMessage({ type: "offset", offsetMs });
  }

  /** Beats now (after a reconnect) instead of at the next period. */
  beatNow(): void {
    this.worker?.postMessage({ type: "beat" });
  }

  /** Stops the thread (its connection closes with it); no beat is sent after this resolves. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.restartTimer);
    const worker = this.worker;
    this.worker = undefined;
    if (worker) await worker.terminate();
  }
}
