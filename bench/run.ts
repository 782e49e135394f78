/**
 * `npm run bench [-- <scenario> …] [--reps N] [--smoke] [--list]`: starts a throw-away
 * redis-server (no persistence, free loopback port), runs the scenarios (all by default),
 * prints one table on stdout (progress goes to stderr) and writes the raw results to
 * bench/results/latest.json.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { startRedis } from "../test/harness/redis-server.js";
import { runScenarios } from "./bench.js";
import { SCENARIOS, scenarioNamed } from "./scenarios/index.js";
import { renderTable } from "./table.js";

const RESULTS = fileURLToPath(new URL("./results/", import.meta.url));

async function main(): Promise<void> {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      reps: { type: "string", default: "3" },
      smoke: { type: "boolean", default: false },
      list: { type: "boolean", default: false },
    },
  });
  if (values.list) {
    for (const s of SCENARIOS) console.log(`${s.name.padEnd(10)} ${s.title}`);
    return;
  }
  const reps = Number(values.reps);
  if (!Number.isInteger(reps) || reps < 1)
    throw new Error(`--reps must be a positive integer, got ${values.reps}`);
  const scenarios = positionals.length > 0 ? positionals.map(scenarioNamed) : [...SCENARIOS];
  const server = await startRedis();
  const started = Date.now();
  const progress = (line: string) =>
    process.stderr.write(`[${((Date.now() - started) / 1000).toFixed(0).padStart(4)} s] ${line}\n`);
  progress(`redis-server on ${server.url}; scenarios: ${scenarios.map((s) => s.name).join(", ")}`);
  try {
    const report = await runScenarios({
      scenarios,
      reps,
      profile: values.smoke ? "smoke" : "full",
      server,
      progress,
    });
    mkdirSync(RESULTS, { recursive: true });
    const file = `${RESULTS}latest.json`;
    writeFileSync(file, `${JSON.stringify(report, null, 2)}\n`);
    console.log(renderTable(report.results, reps));
    progress(`done in ${report.seconds.toFixed(0)} s; raw results in ${file}`);
  } finally {
    await server.stop();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
