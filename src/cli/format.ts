/** Parsing and printing of the values people type and read: durations, priorities, times. */
import { isPriority, Priority } from "../priority.js";
import { UsageError } from "./errors.js";

const PRIORITY_NAMES: Record<number, string> = {
  [Priority.LOW]: "LOW",
  [Priority.NORMAL]: "NORMAL",
  [Priority.HIGH]: "HIGH",
  [Priority.CRITICAL]: "CRITICAL",
};

/** `HIGH` for 3; the raw value in brackets when it is not a wire priority. */
export function priorityName(value: unknown): string {
  if (isPriority(value)) return PRIORITY_NAMES[value] as string;
  return value === undefined || value === null ? "-" : `?${JSON.stringify(value)}`;
}

/** Parses `low|normal|high|critical` (any case) or `1`-`4`; throws UsageError otherwise. */
export function parsePriority(text: string, option = "--priority"): Priority {
  const byName = (Priority as Record<string, Priority>)[text.toUpperCase()];
  if (byName !== undefined) return byName;
  const n = Number(text);
  if (isPriority(n)) return n;
  throw new UsageError(`${option} must be low, normal, high, critical or 1-4, got "${text}"`);
}

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/**
 * Parses a duration: a number with a unit (`500ms`, `5s`, `2m`, `1h`, `1d`), or a bare number
 * of seconds, because the wire protocol counts timeouts in seconds. Returns milliseconds.
 */
export function parseDuration(text: string, option: string): number {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)?$/.exec(text.trim());
  if (!match) throw new UsageError(`${option} must be a duration like 500ms, 5s, 2m or 1h, got "${text}"`);
  const ms = Number(match[1]) * (UNIT_MS[match[2] ?? "s"] as number);
  if (!Number.isFinite(ms) || ms <= 0)
    throw new UsageError(`${option} must be more than zero, got "${text}"`);
  return ms;
}

/** Parses a positive integer option. */
export function parseCount(text: string, option: string): number {
  const n = Number(text);
  if (!Number.isSafeInteger(n) || n < 1)
    throw new UsageError(`${option} must be a whole number ≥ 1, got "${text}"`);
  return n;
}

/** `850ms`, `12.3s`, `4m05s`, `3h12m`, `2d04h`: short, for table cells. */
export function shortDuration(ms: number): string {
  const abs = Math.abs(ms);
  if (abs < 1000) return `${Math.round(abs)}ms`;
  if (abs < 60_000) return `${(abs / 1000).toFixed(abs < 10_000 ? 2 : 1)}s`;
  const s = Math.floor(abs / 1000);
  if (abs < 3_600_000) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
  if (abs < 86_400_000)
    return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
  return `${Math.floor(s / 86_400)}d${String(Math.floor((s % 86_400) / 3600)).padStart(2, "0")}h`;
}

/** `12.3s ago` for a past instant (ms), `in 4.0s` for a future one, `-` for none. */
export function relativeTime(atMs: number | null | undefined, nowMs = Date.now()): string {
  if (atMs === null || atMs === undefined || !Number.isFinite(atMs)) return "-";
  const delta = nowMs - atMs;
  return delta >= 0 ? `${shortDuration(delta)} ago` : `in ${shortDuration(-delta)}`;
}

/** `2025-11-27T10:13:04.123Z`, or `-`. */
export function isoTime(atMs: number | null | undefined): string {
  if (atMs === null || atMs === undefined || !Number.isFinite(atMs)) return "-";
  return new Date(atMs).toISOString();
}

/** `10:13:04.123` in local time, for streams. */
export function clockTime(atMs: number): string {
  const d = new Date(atMs);
  const pad = (n: number, w = 2) => String(n).padStart(w, "0");
  return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
}

/** Compact JSON for a table cell, cut to `max` characters. */
export function preview(value: unknown, max = 60): string {
  const text = typeof value === "string" ? value : (JSON.stringify(value) ?? "");
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

/** A Redis URL with its password hidden, for messages. */
export function redactUrl(url: string): string {
  return url.replace(/\/\/([^@/]*)@/, (_, auth: string) => (auth.includes(":") ? "//***:***@" : "//***@"));
}
