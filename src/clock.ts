/**
 * Time. Deadlines are judged by Redis' clock (the claim script reads `TIME`), so the timestamps
 * redactor writes into messages follow Redis' clock too: a `RedisClock` keeps the offset between
 * this process's monotonic clock and Redis `TIME`, measured at the midpoint of the round trip,
 * at connect, periodically and after every reconnect. Between measurements it runs on the
 * monotonic clock (`performance.now()`), so a step of the local wall clock changes nothing until
 * the next measurement, and a host whose clock is minutes off still stamps Redis' time.
 *
 * Every clock hands out strictly increasing microseconds, so two messages stamped in the same
 * microsecond by one clock keep their order.
 *
 * Host-side timers are a second, separate seam: a {@link HostClock} (`createSystem({ clock })`),
 * real time by default ({@link realTime}, with `now()` = Redis' clock read locally), or a
 * {@link SimulatedClock} for tests in virtual time. It drives the timers whose only judge is
 * this process: a cell's handler timeout (`handlerTimeoutMs`) and its wake-up retry after a
 * failed claim, the delayed wake-up when a retry comes due, an ask's timeout, the supervisor's
 * restart backoff and restart-intensity window, the wake-up sweep, a family pool's tick and scan
 * and its idle passivation (a cell's `lastActiveAt`), a stand-by's retry (single activation),
 * the presence repair, actor timers.
 *
 * Left on real time, on purpose, because what they bound runs on a real clock elsewhere:
 * - anything Redis judges by its own `TIME`: message deadlines, lease expiry, the due time of a
 *   handler retry (`retryAtMs`, written on Redis' clock: a retry is claimed again only once
 *   Redis' clock has passed it, whatever a SimulatedClock says) and of scheduled messages,
 *   heartbeat staleness;
 * - a cell's lease renewal and the age check of its last renewal (`renewedAt`), and the finish
 *   linger (FINISH_LINGER_MS, its outcome buffer's age): they exist to reach Redis before a
 *   lease runs out on Redis' real clock; in virtual time a test that does not advance would
 *   lose its leases, or hold finished messages unwritten until they ran again;
 * - the offset arithmetic against Redis' time in a claim (`result.nowMs - Date.now()`), which
 *   stamps deadlines and retry times in Redis' clock;
 * - the heartbeat worker thread and its failure times (presence.ts `firstFailureAt`): other
 *   processes judge this one dead by real time;
 * - connection connect/command timeouts (connection.ts) and this module's RedisClock sync: I/O
 *   bounds;
 * - shutdown and stop deadlines (`Date.now() + shutdownTimeoutMs`, deadline.ts `settledBefore`):
 *   a stop must end in real time even when a virtual clock is never advanced;
 * - durations reported in events and metrics (`performance.now()`): measurements.
 */
import type { RedisClient } from "./cluster.js";
import { InvalidOptionError } from "./errors.js";

/** A source of timestamps. */
export interface Clock {
  /** Microseconds since the Unix epoch, strictly increasing for this clock. */
  nowMicros(): number;
  /** Milliseconds since the Unix epoch (not strictly increasing). */
  nowMs(): number;
}

/**
 * This process's wall clock read through the monotonic clock: the wall time at the process's (or
 * worker thread's) start plus the time elapsed since, ms. It does not follow a wall-clock step
 * made after the start; that is what the offset to Redis corrects.
 */
export function monotonicWallMs(): number {
  return performance.timeOrigin + performance.now();
}

/**
 * Strictly increasing microseconds over a base clock read in ms: the base's value when it moved
 * forward, else one more than the last value handed out (a base that went back is caught up with
 * one microsecond per call).
 */
export class IncreasingMicros {
  private lastUs = 0;

  /** The next value for a base reading of `nowMs`. */
  next(nowMs: number): number {
    const now = Math.floor(nowMs * 1000);
    this.lastUs = now > this.lastUs ? now : this.lastUs + 1;
    return this.lastUs;
  }
}

/** The local wall clock (`Date.now()`), with microseconds strictly increasing in this process. */
class LocalClock implements Clock {
  private readonly micros = new IncreasingMicros();

  nowMicros(): number {
    // Date.now() follows corrections of the wall clock (NTP on a board without a real-time
    // clock); performance.now() only adds the sub-millisecond part.
    return this.micros.next(Date.now() + (performance.now() % 1));
  }

  nowMs(): number {
    return Date.now();
  }
}

/** The local wall clock, for code that has no connection to Redis (a CLI before it connects). */
export const localClock: Clock = new LocalClock();

/** How often a RedisClock measures its offset again, ms. */
export const CLOCK_SYNC_MS = 60_000;

/** Round trips per measurement; the one with the shortest round trip is kept. */
const SAMPLES = 3;

/** One measurement of Redis' clock. */
export interface ClockSample {
  /** Redis' time minus `monotonicWallMs()`, ms, at the midpoint of the round trip. */
  offsetMs: number;
  /** Round trip of the `TIME` command, ms (the offset's uncertainty is half of it). */
  rttMs: number;
}

/** Measures the offset of Redis' clock to `monotonicWallMs()` once. */
export async function sampleRedisClock(redis: RedisClient): Promise<ClockSample> {
  const sentAt = monotonicWallMs();
  const [seconds, micros] = await redis.time();
  const receivedAt = monotonicWallMs();
  const redisMs = Number(seconds) * 1000 + Number(micros) / 1000;
  return { offsetMs: redisMs - (sentAt + receivedAt) / 2, rttMs: receivedAt - sentAt };
}

/**
 * Redis' clock, read locally: `monotonicWallMs()` plus the offset last measured. Until the first
 * measurement it is the local wall clock.
 */
export class RedisClock implements Clock {
  private offsetMs: number;
  private readonly micros = new IncreasingMicros();
  private timer: NodeJS.Timeout | undefined;
  private synced = false;

  constructor(
    private readonly redis: RedisClient,
    /** Called after every successful measurement (the heartbeat thread follows the offset). */
    private readonly onSync: (sample: ClockSample) => void = () => {},
  ) {
    this.offsetMs = Date.now() - monotonicWallMs();
  }

  /** The offset of Redis' clock to `monotonicWallMs()`, ms. */
  get offset(): number {
    return this.offsetMs;
  }

  /** True once the offset has been measured against Redis at least once. */
  get isSynced(): boolean {
    return this.synced;
  }

  nowMicros(): number {
    return this.micros.next(monotonicWallMs() + this.offsetMs);
  }

  nowMs(): number {
    return monotonicWallMs() + this.offsetMs;
  }

  /**
   * Measures the offset now: SAMPLES round trips of `TIME`, keeping the shortest. Throws what
   * the connection throws (the previous offset then stays).
   */
  async sync(): Promise<ClockSample> {
    let best: ClockSample | undefined;
    for (let i = 0; i < SAMPLES; i++) {
      const sample = await sampleRedisClock(this.redis);
      if (!best || sample.rttMs < best.rttMs) best = sample;
    }
    const chosen = best as ClockSample;
    this.offsetMs = chosen.offsetMs;
    this.synced = true;
    this.onSync(chosen);
    return chosen;
  }

  /** Measures now, then every `periodMs`; a failed periodic measurement keeps the last offset. */
  async start(periodMs = CLOCK_SYNC_MS): Promise<void> {
    await this.sync();
    this.timer = setInterval(() => {
      this.sync().catch(() => {
        // The connection is down; the reconnect measures again.
      });
    }, periodMs);
    this.timer.unref();
  }

  /** Stops measuring. */
  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }
}

/**
 * A host-side timer handed out by a {@link HostClock}: opaque, given back to `clear…`. `unref`
 * lets the process exit while it is pending (a no-op in virtual time).
 */
export interface TimerHandle {
  unref(): unknown;
}

/**
 * The one seam host-side timers go through (see the module doc for which, and which stay on
 * real time): handler timeouts, retry wake-ups, ask timeouts, supervisor backoff, the sweep,
 * actor timers. `createSystem({ clock })` takes one; the default runs on real time. A
 * {@link SimulatedClock} runs them in virtual time, for tests of timers and backoff that do not
 * involve Redis' own clock (deadlines, leases and scheduled messages are judged by Redis' `TIME`
 * and stay on real time). xstate's SimulatedClock is the model.
 */
export interface HostClock {
  /** Milliseconds since the Unix epoch, as this clock sees them. */
  now(): number;
  /** Calls `fn` once after `ms` ms (a negative or NaN `ms` counts as 0). */
  setTimeout(fn: () => void, ms: number): TimerHandle;
  /** Cancels a timer from `setTimeout`; `undefined` and a fired timer are ignored. */
  clearTimeout(handle: TimerHandle | undefined): void;
  /** Calls `fn` every `ms` ms until cleared. */
  setInterval(fn: () => void, ms: number): TimerHandle;
  /** Cancels a timer from `setInterval`; `undefined` is ignored. */
  clearInterval(handle: TimerHandle | undefined): void;
}

/**
 * Real time: Node's timers, and `now` from `nowMs` (the local wall clock by default; a system
 * passes its RedisClock's `nowMs`, so host-side times follow Redis' clock).
 */
export function realTime(nowMs: () => number = Date.now): HostClock {
  return {
    now: nowMs,
    setTimeout: (fn, ms) => setTimeout(fn, Math.min(Math.max(0, ms || 0), 2_147_483_647)),
    clearTimeout: (handle) => clearTimeout(handle as NodeJS.Timeout | undefined),
    setInterval: (fn, ms) => setInterval(fn, Math.min(Math.max(1, ms || 0), 2_147_483_647)),
    clearInterval: (handle) => clearInterval(handle as NodeJS.Timeout | undefined),
  };
}

/** The functions a {@link HostClock} must have. */
const HOST_CLOCK_METHODS = ["now", "setTimeout", "clearTimeout", "setInterval", "clearInterval"] as const;

/**
 * Throws InvalidOptionError unless `value` is undefined or a {@link HostClock}: an object with
 * the five functions `now`, `setTimeout`, `clearTimeout`, `setInterval`, `clearInterval`.
 */
export function checkHostClock(option: string, value: unknown): void {
  if (value === undefined) return;
  const missing =
    typeof value === "object" && value !== null
      ? HOST_CLOCK_METHODS.filter((name) => typeof (value as Record<string, unknown>)[name] !== "function")
      : [...HOST_CLOCK_METHODS];
  if (missing.length === 0) return;
  throw new InvalidOptionError(
    option,
    value,
    `invalid option ${option}: it must be a HostClock, an object with the functions ` +
      `${HOST_CLOCK_METHODS.join(", ")} (missing: ${missing.join(", ")}); use new SimulatedClock() for ` +
      "virtual time, or leave it out for real time on Redis' clock",
  );
}

interface SimulatedTimer extends TimerHandle {
  at: number;
  seq: number;
  fn: () => void;
  everyMs?: number;
  cleared: boolean;
  /** The clock that set it: another clock's handle is ignored by clearTimeout. */
  clock: SimulatedClock;
}

/**
 * Virtual time for tests: nothing fires until `advance` (or `runAll`) moves the clock, and then
 * every host timer due within the step fires in due order (ties in the order they were set),
 * each at its own due time, including timers set by timers that fired during the step.
 *
 * That is true of the callbacks, which run synchronously inside `advance`. Work they start on
 * Redis runs after `advance` has returned, when `now()` is already the end of the step. A durable
 * actor timer (`ctx.timers`) is one such: one `advance` over several of its periods is a host that
 * was late by several periods, and its missed-tick policy applies (`"once"` sends one tick). To
 * see every tick, advance by at most one period at a time and wait for each tick to be delivered
 * between steps, or start the timer with `missed: "all"`.
 *
 * Costs: `setTimeout` and each timer fired take O(log n) (a binary heap), `clearTimeout` O(1) (a
 * cleared timer is dropped when it reaches the top), `nextAt` and `pending` O(1) amortized.
 *
 * ```ts
 * const clock = new SimulatedClock();
 * const system = await createSystem({ appId: "t", redis, clock });
 * clock.advance(30_000); // the supervisor's backoff, the actor's timers … fire now
 * ```
 */
export class SimulatedClock implements HostClock {
  private current: number;
  private seq = 0;
  /** A binary min-heap on (at, seq); cleared timers stay until they reach the top. */
  private heap: SimulatedTimer[] = [];
  /** How many timers in the heap are not cleared. */
  private live = 0;
  /** True while `advance` fires timers: a timer may not advance the clock itself. */
  private advancing = false;

  /** @param startMs the virtual time to start at, ms since the epoch. @default Date.now() */
  constructor(startMs: number = Date.now()) {
    this.current = startMs;
  }

  now(): number {
    return this.current;
  }

  setTimeout(fn: () => void, ms: number): TimerHandle {
    return this.add(fn, Math.max(0, ms || 0), undefined);
  }

  clearTimeout(handle: TimerHandle | undefined): void {
    const timer = handle as SimulatedTimer | undefined;
    if (!timer || timer.cleared || timer.clock !== this) return;
    timer.cleared = true;
    this.live -= 1;
  }

  setInterval(fn: () => void, ms: number): TimerHandle {
    const every = Math.max(1, ms || 0);
    return this.add(fn, every, every);
  }

  clearInterval(handle: TimerHandle | undefined): void {
    this.clearTimeout(handle);
  }

  /** How many timers are waiting. */
  get pending(): number {
    return this.live;
  }

  /** When the next timer is due (virtual ms since the epoch), or undefined when none waits. */
  get nextAt(): number | undefined {
    return this.top()?.at;
  }

  /**
   * Moves the clock `ms` forward, firing every timer due on the way, in order. A timer that
   * throws does not stop the others; the first error is thrown after the step.
   * @param ms how far, ms: a finite number ≥ 0.
   * @throws RangeError when `ms` is negative, NaN or infinite (the step would never end).
   */
  advance(ms: number): void {
    if (!(ms >= 0) || !Number.isFinite(ms)) {
      throw new RangeError(`advance(ms): ms must be a finite number >= 0, got ${ms}`);
    }
    if (this.advancing) {
      throw new Error(
        "advance(ms) was called from a timer of the same SimulatedClock; advance from the test instead",
      );
    }
    this.advancing = true;
    try {
      this.step(this.current + ms);
    } finally {
      this.advancing = false;
    }
  }

  private step(target: number): void {
    let firstError: unknown;
    for (;;) {
      const next = this.top();
      if (!next || next.at > target) break;
      this.current = Math.max(this.current, next.at);
      this.pop();
      if (next.everyMs !== undefined) {
        next.at += next.everyMs;
        this.push(next);
      } else {
        next.cleared = true;
        this.live -= 1;
      }
      try {
        next.fn();
      } catch (error) {
        firstError ??= error;
      }
    }
    this.current = target;
    if (firstError !== undefined) throw firstError;
  }

  /** Fires timers until none is left (intervals excepted), at most `limit` of them. */
  runAll(limit = 10_000): void {
    for (let i = 0; i < limit; i++) {
      let next: SimulatedTimer | undefined;
      for (const t of this.heap) {
        if (t.cleared || t.everyMs !== undefined) continue;
        if (!next || t.at < next.at || (t.at === next.at && t.seq < next.seq)) next = t;
      }
      if (!next) return;
      this.advance(Math.max(0, next.at - this.current));
    }
  }

  private add(fn: () => void, delayMs: number, everyMs: number | undefined): SimulatedTimer {
    const timer: SimulatedTimer = {
      at: this.current + delayMs,
      seq: this.seq++,
      fn,
      everyMs,
      cleared: false,
      clock: this,
      unref: () => timer,
    };
    this.push(timer);
    this.live += 1;
    return timer;
  }

  /** The earliest live timer, cleared ones on top dropped on the way. */
  private top(): SimulatedTimer | undefined {
    while (this.heap.length > 0 && (this.heap[0] as SimulatedTimer).cleared) this.pop();
    return this.heap[0];
  }

  private static before(a: SimulatedTimer, b: SimulatedTimer): boolean {
    return a.at < b.at || (a.at === b.at && a.seq < b.seq);
  }

  private push(timer: SimulatedTimer): void {
    const heap = this.heap;
    let i = heap.push(timer) - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      const p = heap[parent] as SimulatedTimer;
      if (!SimulatedClock.before(timer, p)) break;
      heap[i] = p;
      i = parent;
    }
    heap[i] = timer;
  }

  private pop(): void {
    const heap = this.heap;
    const last = heap.pop();
    if (last === undefined || heap.length === 0) return;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= heap.length) break;
      const r = l + 1;
      const right = heap[r];
      const child = right !== undefined && SimulatedClock.before(right, heap[l] as SimulatedTimer) ? r : l;
      const c = heap[child] as SimulatedTimer;
      if (!SimulatedClock.before(c, last)) break;
      heap[i] = c;
      i = child;
    }
    heap[i] = last;
  }
}
