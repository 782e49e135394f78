/** Exponential backoff with jitter, for actor restarts and message retries. */

/** How delays grow. */
export interface BackoffOptions {
  /**
   * The first delay, ms.
   * @default 100
   */
  minMs?: number;
  /**
   * The largest delay, ms.
   * @default 10000
   */
  maxMs?: number;
  /**
   * Each delay is the previous one times this.
   * @default 2
   */
  factor?: number;
  /**
   * Random spread, as a fraction of the delay (0.2 = ±20 %), so that many actors failing
   * together do not retry in lockstep.
   * @default 0.2
   */
  jitter?: number;
}

/** The `maxMs` of a backoff that does not name one, ms. */
export const DEFAULT_BACKOFF_MAX_MS = 10_000;

/** The delay before attempt `n` (1 = the first retry). */
export function backoffDelay(options: BackoffOptions, n: number, random: () => number = Math.random): number {
  const min = options.minMs ?? 100;
  const max = options.maxMs ?? DEFAULT_BACKOFF_MAX_MS;
  const factor = options.factor ?? 2;
  const jitter = options.jitter ?? 0.2;
  const base = Math.min(max, min * factor ** Math.max(0, n - 1));
  const spread = base * jitter * (2 * random() - 1);
  return Math.max(0, Math.round(Math.min(max, base + spread)));
}
