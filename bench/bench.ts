/**
 * Runs scenarios against one redis-server and gathers what they measured, for the CLI
 * (`run.ts`) and the smoke test alike.
 */
import { cpus, totalmem } from "node:os";
import type { Redis } from "ioredis";
import type { AnyScenario, BenchEnv, ScenarioResult } from "./model.js";
import { serverVersion } from "./redis-info.js";
import { summarize } from "./stats.js";

/** The server the scenarios use: the harness's TestRedis fits. */
export interface BenchServer {
  readonly host: string;
  readonly port: number;
  readonly url: string;
  client(): Redis;
}

/** Options of `runScenarios`. */
export interface BenchOptions {
  scenarios: readonly AnyScenario[];
  /** Measured repetitions after the warm-up. */
  reps: number;
  /** `full` for `npm run bench`, `smoke` for tiny sizes. */
  profile: "full" | "smoke";
  server: BenchServer;
  /** Progress lines. @default none */
  progress?: (line: string) => void;
}

/** What `bench/results/latest.json` holds. */
export interface BenchReport {
  startedAt: string;
  seconds: number;
  reps: number;
  profile: "full" | "smoke";
  machine: { cpus: number; cpuModel: string; memoryGiB: number; node: string; redis: string };
  results: (ScenarioResult & {
    summaries: { figure: string; system: string; median: number; min: number; max: number }[];
  })[];
}

/** Runs the scenarios in order; each gets a clean server (FLUSHALL) and its sizes of `profile`. */
export async function runScenarios(options: BenchOptions): Promise<BenchReport> {
  const startedAt = new Date();
  const t0 = performance.now();
  const admin = options.server.client();
  const env: BenchEnv = {
    redisUrl: options.server.url,
    host: options.server.host,
    port: options.server.port,
    admin,
    reps: options.reps,
    progress: options.progress ?? (() => {}),
  };
  const results: BenchReport["results"] = [];
  try {
    for (const scenario of options.scenarios) {
      await admin.flushall("SYNC");
      const s0 = performance.now();
      const result = await scenario.run(env, options.profile === "full" ? scenario.full : scenario.smoke);
      const seconds = (performance.now() - s0) / 1000;
      const summaries = [
        ...result.figures.map((f) => ({ figure: f.figure, system: f.system, ...summarize(f.samples) })),
        ...result.ratios.map((r) => ({
          figure: r.figure,
          system: `${r.of} ÷ ${r.to}`,
          ...summarize(r.samples),
        })),
      ];
      results.push({ ...result, seconds, summaries });
      env.progress(`${scenario.name}: done in ${seconds.toFixed(1)} s`);
    }
    return {
      startedAt: startedAt.toISOString(),
      seconds: (performance.now() - t0) / 1000,
      reps: options.reps,
      profile: options.profile,
      machine: {
        cpus: cpus().length,
        cpuModel: cpus()[0]?.model ?? "unknown",
        memoryGiB: Math.round(totalmem() / 2 ** 30),
        node: process.version,
        redis: await serverVersion(admin),
      },
      results,
    };
  } finally {
    admin.disconnect();
  }
}
