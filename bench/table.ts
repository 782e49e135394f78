/**
 * The one table a run prints: a Markdown pipe table (readable in a terminal, pasteable in a
 * note). One row per figure and system, then one row per ratio; median, min and max over the
 * repetitions; a target column and whether the median meets it. Sizes and notes follow it.
 */
import type { ScenarioResult, Target } from "./model.js";
import { summarize } from "./stats.js";

/** Formats a number for the table: thousands separators for big values, 3 significant digits for small. */
export function formatNumber(value: number): string {
  if (!Number.isFinite(value)) return "n/a";
  const abs = Math.abs(value);
  if (abs >= 1000 || Number.isInteger(value)) return Math.round(value).toLocaleString("en-US");
  if (abs >= 100) return value.toFixed(0);
  if (abs >= 10) return value.toFixed(1);
  if (abs >= 1) return value.toFixed(2);
  if (abs === 0) return "0";
  return value.toPrecision(2);
}

function targetText(target: Target | undefined, unit: string): string {
  if (!target) return "";
  const op = target.op === ">=" ? "≥" : "≤";
  // Targets are round numbers as the issue states them: no padding decimals.
  return `${op} ${target.value}${unit === "×" ? " ×" : ` ${unit}`}`;
}

/** True when the median meets the target. */
export function meets(target: Target, median: number): boolean {
  return target.op === ">=" ? median >= target.value : median <= target.value;
}

interface Row {
  cells: string[];
  missed: boolean;
}

function rowsOf(result: ScenarioResult): Row[] {
  const rows: Row[] = [];
  const push = (figure: string, system: string, unit: string, samples: number[], target?: Target) => {
    const s = summarize(samples);
    const met = target ? (meets(target, s.median) ? "yes" : "**MISSED**") : "";
    rows.push({
      cells: [
        result.scenario,
        figure,
        system,
        formatNumber(s.median),
        formatNumber(s.min),
        formatNumber(s.max),
        unit,
        targetText(target, unit),
        met,
      ],
      missed: target !== undefined && !meets(target, s.median),
    });
  };
  for (const f of result.figures) push(f.figure, f.system, f.unit, f.samples, f.target);
  for (const r of result.ratios) {
    // A ratio of two figures of one system (e.g. delay ÷ batch time) names the system once.
    push(r.figure, r.of === r.to ? r.of : `${r.of} ÷ ${r.to}`, "×", r.samples, r.target);
  }
  return rows;
}

const HEADER = ["scenario", "figure", "system", "median", "min", "max", "unit", "target", "met"];
/** Columns aligned right (the numbers). */
const RIGHT = new Set([3, 4, 5]);

/** Renders the table, then the sizes and notes of every scenario. */
export function renderTable(results: readonly ScenarioResult[], reps: number): string {
  const rows = results.flatMap(rowsOf);
  const widths = HEADER.map((h, i) => Math.max(h.length, ...rows.map((r) => (r.cells[i] as string).length)));
  const line = (cells: readonly string[]) =>
    `| ${cells.map((c, i) => (RIGHT.has(i) ? c.padStart(widths[i] as number) : c.padEnd(widths[i] as number))).join(" | ")} |`;
  const out = [
    `redactor benchmarks: median, min and max over ${reps} repetitions after a warm-up; a ratio is taken repetition by repetition (redactor's i-th run ÷ the baseline's i-th run).`,
    "",
    line(HEADER),
    `|${widths.map((w, i) => (RIGHT.has(i) ? `${"-".repeat(w + 1)}:` : "-".repeat(w + 2))).join("|")}|`,
  ];
  let previous = "";
  for (const row of rows) {
    const cells = [...row.cells];
    // The scenario's name on its first row only, so groups stand out.
    if (cells[0] === previous) cells[0] = "";
    else previous = cells[0] as string;
    out.push(line(cells));
  }
  out.push("");
  for (const r of results) out.push(`- ${r.scenario}: ${r.size}; ${r.seconds.toFixed(0)} s`);
  for (const r of results) for (const note of r.notes) out.push(`- ${note}`);
  const missed = rows.filter((r) => r.missed).map((r) => `${r.cells[0]} ${r.cells[1]} (${r.cells[2]})`);
  out.push("", missed.length === 0 ? "Every target met." : `Targets missed: ${missed.length}.`);
  return out.join("\n");
}
