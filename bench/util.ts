/** Small async helpers shared by the scenarios and baselines. */

/** Resolves after `ms`. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

let counter = 0;

/** A name no other run in this process uses (queues, app ids), so runs never see each other's keys. */
export function uid(label: string): string {
  counter += 1;
  return `bench-${label}-${process.pid}-${counter}`;
}

/**
 * Calls `send(0 … n-1)` keeping `window` calls in flight: the way a busy producer feeds a
 * connection (commands are pipelined on the socket) without building n promises at once.
 */
export async function pump(n: number, window: number, send: (i: number) => Promise<unknown>): Promise<void> {
  let next = 0;
  const lane = async () => {
    while (next < n) {
      const i = next;
      next += 1;
      await send(i);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(window, n)) }, lane));
}

/** Polls `check` every `everyMs` until it holds; throws after `timeoutMs` naming `what`. */
export async function waitUntil(
  check: () => boolean | Promise<boolean>,
  what: string,
  timeoutMs = 60_000,
  everyMs = 1,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline)
      throw new Error(`benchmark: timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(everyMs);
  }
}

/**
 * A counter with a promise per threshold: `reached(n)` resolves once `hit()` was called n times.
 * Completion events feed it, so a run ends on the event itself, not on a polling tick.
 */
export class Countdown {
  count = 0;
  private waiters: { n: number; resolve: () => void }[] = [];

  hit(): void {
    this.count += 1;
    if (this.waiters.length === 0) return;
    this.waiters = this.waiters.filter((w) => {
      if (this.count < w.n) return true;
      w.resolve();
      return false;
    });
  }

  /** Resolves when the count reaches `n`; rejects after `timeoutMs`. */
  reached(n: number, timeoutMs = 120_000): Promise<void> {
    if (this.count >= n) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`benchmark: only ${this.count} of ${n} completions after ${timeoutMs} ms`)),
        timeoutMs,
      );
      this.waiters.push({
        n,
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
      });
    });
  }
}
