/**
 * Warm-up and repetitions. Every system runs once to warm up (JIT, script cache, connection
 * pools), its result thrown away; then the systems take turns, repetition by repetition, so
 * that the i-th samples of redactor and of a baseline ran back to back under the same load
 * and their ratio is a fair pair.
 */
import type { BenchEnv } from "./model.js";

/** One contender of a scenario: its name and one run at a given size. */
export interface Contender<T> {
  name: string;
  run(warmup: boolean): Promise<T>;
}

/** Options of `rounds`. */
export interface RoundsOptions {
  /** FLUSHALL before every run, so each starts on an empty server. @default true */
  flush?: boolean;
  /** Skip the warm-up round. @default false */
  noWarmup?: boolean;
}

/** Runs the warm-up round and `env.reps` measured rounds; `record` gets each measured result. */
export async function rounds<T>(
  env: BenchEnv,
  scenario: string,
  contenders: readonly Contender<T>[],
  record: (name: string, result: T) => void,
  options: RoundsOptions = {},
): Promise<void> {
  const flush = options.flush ?? true;
  const first = options.noWarmup ? 1 : 0;
  for (let rep = first; rep <= env.reps; rep++) {
    for (const contender of contenders) {
      if (flush) await env.admin.flushall("SYNC");
      const label = rep === 0 ? "warm-up" : `${rep}/${env.reps}`;
      env.progress(`${scenario}: ${contender.name} ${label}`);
      const result = await contender.run(rep === 0);
      if (rep > 0) record(contender.name, result);
    }
  }
  if (flush) await env.admin.flushall("SYNC");
}
