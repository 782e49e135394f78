/**
 * Checks of option values, one per kind of value (a count, a duration, one of a few words …).
 * Each throws InvalidOptionError naming the option, the value it got, what it must be, and its
 * default, so that a typo fails where it is made instead of as a strange behaviour later.
 * An option left `undefined` takes its default and passes every check.
 */
import { DEFAULT_BACKOFF_MAX_MS } from "./backoff.js";
import { InvalidOptionError } from "./errors.js";
import { LONE_SURROGATE } from "./ids.js";
import { isPriority } from "./priority.js";

/** Longest delay a Node.js timer takes (2^31 - 1 ms, about 24.8 days); a longer one fires at once. */
export const MAX_TIMER_MS = 2_147_483_647;

/** Bounds of a number option. */
export interface NumberRange {
  /** Smallest value allowed. */
  min?: number;
  /** The value must be strictly greater than this. */
  above?: number;
  /** Largest value allowed. */
  max?: number;
  /** Only whole numbers. */
  integer?: boolean;
  /** The unit, shown in the message (`ms`, `bytes` …). */
  unit?: string;
}

function shown(value: unknown): string {
  if (typeof value === "string") return JSON.stringify(value);
  if (typeof value === "bigint") return `${value}n`;
  if (typeof value === "function") return "a function";
  if (value !== null && typeof value === "object") return Array.isArray(value) ? "an array" : "an object";
  return String(value);
}

function fail(option: string, value: unknown, must: string, fallback: string | undefined): never {
  throw new InvalidOptionError(
    option,
    value,
    `invalid option ${option}: got ${shown(value)}; it must be ${must}` +
      (fallback === undefined ? "" : ` (leave it out for the default, ${fallback})`),
  );
}

function rangeText(range: NumberRange): string {
  const parts: string[] = [];
  if (range.above !== undefined) parts.push(`greater than ${range.above}`);
  if (range.min !== undefined) parts.push(`at least ${range.min}`);
  if (range.max !== undefined) parts.push(`at most ${range.max}`);
  const kind = range.integer ? "a whole number" : "a finite number";
  return `${kind}${range.unit ? ` of ${range.unit}` : ""}${parts.length ? `, ${parts.join(" and ")}` : ""}`;
}

/**
 * Throws InvalidOptionError unless `value` is undefined or a number within `range`.
 * @param fallback the default, for the message.
 */
export function checkNumber(option: string, value: unknown, range: NumberRange, fallback?: string): void {
  if (value === undefined) return;
  const ok =
    typeof value === "number" &&
    Number.isFinite(value) &&
    (!range.integer || Number.isInteger(value)) &&
    (range.min === undefined || value >= range.min) &&
    (range.above === undefined || value > range.above) &&
    (range.max === undefined || value <= range.max);
  if (!ok) fail(option, value, rangeText(range), fallback);
}

/** Throws InvalidOptionError unless `value` is undefined or one of `allowed`. */
export function checkOneOf(
  option: string,
  value: unknown,
  allowed: readonly unknown[],
  fallback?: string,
): void {
  if (value === undefined || allowed.includes(value)) return;
  fail(option, value, `one of ${allowed.map(shown).join(", ")}`, fallback);
}

/** Throws InvalidOptionError unless `value` is undefined or a boolean. */
export function checkBoolean(option: string, value: unknown, fallback?: string): void {
  if (value === undefined || typeof value === "boolean") return;
  fail(option, value, "true or false", fallback);
}

/** Throws InvalidOptionError unless `value` is undefined or a function. */
export function checkFunction(option: string, value: unknown): void {
  if (value === undefined || typeof value === "function") return;
  fail(option, value, "a function", undefined);
}

/** Throws InvalidOptionError unless `value` is undefined or a plain object (not null, not an array). */
export function checkObject(option: string, value: unknown, fallback?: string): void {
  if (value === undefined || (typeof value === "object" && value !== null && !Array.isArray(value))) return;
  fail(option, value, "an object", fallback);
}

/** Throws InvalidOptionError unless `value` is an object: for options that have no default. */
export function requireObject(option: string, value: unknown): void {
  if (typeof value === "object" && value !== null && !Array.isArray(value)) return;
  fail(option, value, "an object", undefined);
}

/** Throws InvalidOptionError unless `value` is undefined or valid BackoffOptions (src/backoff.ts). */
export function checkBackoff(option: string, value: unknown): void {
  checkObject(option, value);
  if (value === undefined) return;
  const b = value as Record<string, unknown>;
  checkNumber(`${option}.minMs`, b.minMs, { min: 0, unit: "ms" });
  checkNumber(`${option}.maxMs`, b.maxMs, { min: 0, unit: "ms" });
  checkNumber(`${option}.factor`, b.factor, { min: 1 });
  checkNumber(`${option}.jitter`, b.jitter, { min: 0, max: 1 });
  if (typeof b.minMs === "number" && typeof b.maxMs === "number" && b.minMs > b.maxMs) {
    fail(`${option}.maxMs`, b.maxMs, `at least ${option}.minMs (${b.minMs})`, undefined);
  }
  // Without maxMs, the default caps every delay: a larger minMs would be cut down silently.
  if (typeof b.minMs === "number" && b.maxMs === undefined && b.minMs > DEFAULT_BACKOFF_MAX_MS) {
    fail(
      `${option}.minMs`,
      b.minMs,
      `at most ${option}.maxMs, which defaults to ${DEFAULT_BACKOFF_MAX_MS}: set maxMs too`,
      undefined,
    );
  }
}

/** Throws InvalidOptionError unless `value` is undefined or an array of strings. */
export function checkStringArray(option: string, value: unknown, fallback?: string): void {
  if (value === undefined || (Array.isArray(value) && value.every((v) => typeof v === "string"))) return;
  fail(option, value, "an array of strings", fallback);
}

/**
 * Checks the options of one `tell` or `ask` before anything is built or sent (a wrong priority
 * would otherwise reach the wire and be refused by the recipient, or by a script). Throws
 * InvalidOptionError.
 */
export function checkSendOptions(
  options: {
    priority?: unknown;
    timeoutMs?: unknown;
    id?: unknown;
    match?: unknown;
    delayMs?: unknown;
    at?: unknown;
  },
  kind: "tell" | "ask",
): void {
  checkObject(`${kind} options`, options);
  checkSchedule(options);
  if (options.priority !== undefined && !isPriority(options.priority)) {
    fail(
      "priority",
      options.priority,
      "a Priority: 1 LOW, 2 NORMAL, 3 HIGH or 4 CRITICAL",
      "Priority.NORMAL",
    );
  }
  checkNumber(
    "timeoutMs",
    options.timeoutMs,
    { above: 0, max: MAX_TIMER_MS, unit: "ms" },
    kind === "ask" ? "the system's askTimeoutMs" : "no deadline",
  );
  const id = options.id;
  if (
    id !== undefined &&
    (typeof id !== "string" || id === "" || LONE_SURROGATE.test(id) || id.includes("\ufffd"))
  ) {
    fail("id", id, "a non-empty string of well-formed text (no lone surrogate, no U+FFFD)", "a fresh uuid4");
  }
  if (options.match !== undefined) checkFunction("match", options.match);
}

/** Longest delay of a scheduled message: 10 years, in ms. */
export const MAX_SCHEDULE_MS = 10 * 365.25 * 24 * 3600 * 1000;

/**
 * Checks the scheduling options of a send: `delayMs` a finite number of ms from 0 to
 * MAX_SCHEDULE_MS, `at` a valid Date or finite epoch ms no more than MAX_SCHEDULE_MS from now
 * (any time in the past is fine: the message is then sent at once), not both. Throws
 * InvalidOptionError.
 */
export function checkSchedule(options: { delayMs?: unknown; at?: unknown }): void {
  checkNumber("delayMs", options.delayMs, { min: 0, max: MAX_SCHEDULE_MS, unit: "ms" }, "0, sent at once");
  const at = options.at;
  if (at === undefined) return;
  if (options.delayMs !== undefined) {
    throw new InvalidOptionError(
      "at",
      at,
      "give either delayMs (a delay) or at (a time) to schedule a message, not both",
    );
  }
  const ms = at instanceof Date ? at.getTime() : at;
  if (typeof ms !== "number" || !Number.isFinite(ms)) {
    fail("at", at, "a valid Date or a finite number of ms since the epoch", "none, sent at once");
  }
  if (ms > Date.now() + MAX_SCHEDULE_MS) {
    fail("at", at, `no more than 10 years (${MAX_SCHEDULE_MS} ms) from now`, "none, sent at once");
  }
}
