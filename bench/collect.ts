/**
 * Collects a scenario's samples as it runs: `add` one value per repetition and system, then
 * `ratio` pairs the redactor's i-th sample with the baseline's i-th sample.
 */
import type { Figure, Ratio, ScenarioResult, Target } from "./model.js";

/** Builds the figures and ratios of one scenario. */
export class Collector {
  readonly figures: Figure[] = [];
  readonly ratios: Ratio[] = [];
  readonly notes: string[] = [];

  /** Records one repetition's value of `figure` for `system` (the first call fixes unit and target). */
  add(system: string, figure: string, unit: string, value: number, target?: Target): void {
    let entry = this.figures.find((f) => f.system === system && f.figure === figure);
    if (!entry) {
      entry = { figure, system, unit, samples: [], ...(target ? { target } : {}) };
      this.figures.push(entry);
    }
    entry.samples.push(value);
  }

  /** The samples recorded for `system`'s `figure` (empty when none). */
  samples(system: string, figure: string): number[] {
    return this.figures.find((f) => f.system === system && f.figure === figure)?.samples ?? [];
  }

  /**
   * Adds the ratio `of ÷ to` of one figure, one value per repetition pair; `toFigure` names the
   * baseline's figure when it differs (e.g. p50 of an ask ÷ p50 of a PING).
   */
  ratio(figure: string, of: string, to: string, target?: Target, toFigure = figure): void {
    const a = this.samples(of, figure);
    const b = this.samples(to, toFigure);
    const n = Math.min(a.length, b.length);
    const samples: number[] = [];
    for (let i = 0; i < n; i++) samples.push((a[i] as number) / (b[i] as number));
    const label = toFigure === figure ? figure : `${figure} ÷ ${toFigure}`;
    this.ratios.push({ figure: label, of, to, samples, ...(target ? { target } : {}) });
  }

  /** A line printed under the table. */
  note(line: string): void {
    this.notes.push(line);
  }

  /** The scenario's result, for the runner. */
  result(scenario: string, size: string): Omit<ScenarioResult, "seconds"> {
    return { scenario, size, figures: this.figures, ratios: this.ratios, notes: this.notes };
  }
}

/** "20,000 messages", with "(issue: 100,000)" when the run is scaled down from the issue's size. */
export function sizeLabel(n: number, what: string, issue?: number): string {
  const text = `${n.toLocaleString("en-US")} ${what}`;
  return issue !== undefined && n < issue
    ? `${text} (issue: ${issue.toLocaleString("en-US")}, scaled down)`
    : text;
}
