/**
 * The benchmarks stay out of `npm test` (no speed is asserted anywhere), but every scenario runs
 * here at tiny size against the suite's own redis-server, so the bench code keeps working.
 */
import { describe, expect, it } from "vitest";
import { runScenarios } from "../bench/bench.js";
import { SCENARIOS } from "../bench/scenarios/index.js";
import { renderTable } from "../bench/table.js";
import { useRedis } from "./harness/redis.js";

const redis = useRedis();

describe("bench smoke run", () => {
  it.each(SCENARIOS.map((s) => [s.name, s] as const))(
    "%s runs at tiny size and reports its figures",
    async (name, scenario) => {
      const report = await runScenarios({
        scenarios: [scenario],
        reps: 1,
        profile: "smoke",
        server: redis(),
      });
      const [result] = report.results;
      expect(result?.scenario).toBe(name);
      expect(result?.figures.length).toBeGreaterThan(0);
      for (const figure of result?.figures ?? []) {
        expect(figure.samples, `${figure.system} ${figure.figure}`).toHaveLength(1);
        expect(Number.isFinite(figure.samples[0]), `${figure.system} ${figure.figure}`).toBe(true);
      }
      for (const ratio of result?.ratios ?? []) expect(ratio.samples).toHaveLength(1);
      expect(renderTable(report.results, 1)).toContain(`| ${name}`);
    },
  );
});
