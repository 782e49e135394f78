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
 */
import type { RedisClient } from "./cluster.js";

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
