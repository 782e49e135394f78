/**
 * What a scenario reports: figures (one sample per repetition, per system) and ratios of the
 * redactor's figure to a baseline's, computed repetition by repetition, so that both sides of
 * each ratio ran back to back under the same load.
 */
import type { Redis } from "ioredis";

/** A bound a figure or ratio must stay within; checked on the median of its samples. */
export interface Target {
  op: ">=" | "<=";
  value: number;
  /** How the issue states it, for the table (e.g. "≥ 5 × BullMQ c=1"). */
  label?: string;
}

/** One figure of one system: one sample per repetition. */
export interface Figure {
  /** What is measured, e.g. "messages/s" or "p99 send → handler". */
  figure: string;
  /** Who was measured: "redactor", "BullMQ c=1", "Redis floor" … */
  system: string;
  unit: string;
  samples: number[];
  target?: Target;
}

/** `of ÷ to` for one figure, one sample per repetition pair. */
export interface Ratio {
  figure: string;
  of: string;
  to: string;
  samples: number[];
  target?: Target;
}

/** All that one scenario measured. */
export interface ScenarioResult {
  scenario: string;
  /** The sizes it ran at, in words (says when it is scaled down from the issue's). */
  size: string;
  figures: Figure[];
  ratios: Ratio[];
  /** Facts worth a line under the table (e.g. what stays in Redis after the TTL). */
  notes: string[];
  seconds: number;
}

/** What every scenario gets from the runner. */
export interface BenchEnv {
  /** URL of the throw-away server every system and baseline talks to. */
  redisUrl: string;
  host: string;
  port: number;
  /** A connection for INFO, FLUSHALL and checks; never used by the measured code. */
  admin: Redis;
  /** Measured repetitions per figure (after one warm-up). */
  reps: number;
  /** Progress lines (stderr), so that stdout is only the table. */
  progress(line: string): void;
}

/** One benchmark scenario at a given size. */
export interface Scenario<P = unknown> {
  name: string;
  /** One line for `--list` and the README. */
  title: string;
  /** Sizes of a full run. */
  full: P;
  /** Tiny sizes for the smoke test: seconds, not minutes. */
  smoke: P;
  run(env: BenchEnv, params: P): Promise<Omit<ScenarioResult, "seconds">>;
}

/** A scenario, as the registry and runner see it. */
// biome-ignore lint/suspicious/noExplicitAny: each scenario has its own parameter type
export type AnyScenario = Scenario<any>;
