/** Reads the run log that test/fixtures/delivery-worker.ts appends to: one JSON line per event. */
import { existsSync, readFileSync } from "node:fs";

/** One line of a run log. */
export interface RunLine {
  key?: string;
  phase?: "start" | "end";
  attempt?: number;
  event?: string;
  pid: number;
  at: number;
  [field: string]: unknown;
}

/** Every line written so far. */
export function readRunLog(file: string): RunLine[] {
  if (!existsSync(file)) return [];
  return readFileSync(file, "utf8")
    .split("\n")
    .filter((line) => line.trim() !== "")
    .map((line) => JSON.parse(line) as RunLine);
}

/** How many runs of each key started. */
export function startsByKey(file: string): Map<string, number> {
  const counts = new Map<string, number>();
  for (const line of readRunLog(file)) {
    if (line.phase === "start" && line.key) counts.set(line.key, (counts.get(line.key) ?? 0) + 1);
  }
  return counts;
}
