/**
 * What an app id (an actor's id, a system's `appId`, the target of a ref) may be. An app id is
 * spliced into Redis key and channel names (`queue:<app>:inbox`, `channel:<app>` …, see
 * keyspace.ts), so a few strings would break that keyspace: the empty string, control
 * characters (a newline splits log lines and CLI output), lone UTF-16 surrogates (Redis stores
 * them as U+FFFD, so two different ids would share one inbox), braces in the hash-tagged layout
 * (they would move the cluster hash tag), and `broadcast`, whose channel `channel:broadcast` the
 * peers' protocol reserves for system-wide notifications. Everything else is allowed, colons
 * included (`drone:42`).
 */
import { InvalidIdError, type InvalidIdRule } from "./errors.js";

/** Longest app id, in bytes of UTF-8. */
export const MAX_ID_BYTES = 256;

/**
 * Ids no app may take: `channel:broadcast` is the peers' system-wide channel, so an actor named
 * `broadcast` would share it (docs/PROTOCOL.md).
 */
export const RESERVED_IDS: readonly string[] = ["broadcast"];

/** The layout an id must fit. */
export interface IdRules {
  /**
   * The hash-tagged key layout is in use: `{` and `}` are refused.
   * @default false
   */
  hashTag?: boolean;
  /**
   * Check the reserved names (app ids); names that never reach the keyspace, such as a
   * supervisor's, need not.
   * @default true
   */
  reserved?: boolean;
}

// C0 and C1 controls and DEL (\p{Cc}), and the line and paragraph separators.
const CONTROL = /[\p{Cc}\u2028\u2029]/u;
/**
 * Half of a UTF-16 surrogate pair (with the u flag a whole pair is one code point, so only a lone
 * half matches): Redis would store it as U+FFFD, the text of another id.
 */
export const LONE_SURROGATE = /\p{Cs}/u;
const BRACE = /[{}]/;

function codePoint(text: string, pattern: RegExp): string {
  const match = pattern.exec(text);
  const cp = match?.[0]?.codePointAt(0) ?? 0;
  return `U+${cp.toString(16).toUpperCase().padStart(4, "0")} at index ${match?.index ?? 0}`;
}

/** The id as it can be shown in one line: JSON-quoted, every control character escaped, shortened. */
function shown(id: unknown): string {
  if (typeof id !== "string") return String(id);
  const text = JSON.stringify(id.length > 80 ? `${id.slice(0, 80)}…` : id);
  // JSON leaves DEL, the C1 controls and the line separators as they are.
  return text.replace(
    /[\p{Cc}\u2028\u2029]/gu,
    (c) => `\\u${(c.codePointAt(0) ?? 0).toString(16).padStart(4, "0")}`,
  );
}

/** What is wrong with `id`, or null when it is a valid id under `rules`. */
export function idProblem(id: unknown, rules: IdRules = {}): { rule: InvalidIdRule; detail: string } | null {
  if (typeof id !== "string")
    return { rule: "type", detail: `is a ${id === null ? "null" : typeof id}, not a string` };
  if (id.length === 0) return { rule: "empty", detail: "is empty" };
  const bytes = Buffer.byteLength(id, "utf8");
  if (bytes > MAX_ID_BYTES) return { rule: "too-long", detail: `is ${bytes} bytes long` };
  if (CONTROL.test(id))
    return { rule: "control-character", detail: `holds a control character (${codePoint(id, CONTROL)})` };
  if (LONE_SURROGATE.test(id))
    return {
      rule: "lone-surrogate",
      detail: `holds half a UTF-16 surrogate pair (${codePoint(id, LONE_SURROGATE)})`,
    };
  if (rules.hashTag && BRACE.test(id))
    return {
      rule: "brace",
      detail: `holds "${BRACE.exec(id)?.[0]}", which the hash-tagged layout puts around ids`,
    };
  if ((rules.reserved ?? true) && RESERVED_IDS.includes(id))
    return { rule: "reserved", detail: `is reserved (channel:${id} is the peers' system-wide channel)` };
  return null;
}

/** One sentence on what a valid id is, for error messages. */
export function idRulesText(rules: IdRules = {}): string {
  return (
    `an id is 1 to ${MAX_ID_BYTES} bytes of text without control characters (newline, tab, NUL …)` +
    (rules.hashTag ? " and without { or } (hash-tagged layout)" : "") +
    ((rules.reserved ?? true) ? `, and not ${RESERVED_IDS.map((r) => `"${r}"`).join(" or ")}` : "")
  );
}

/**
 * Throws InvalidIdError unless `id` is a valid id under `rules`.
 * @param what names the id in the message, e.g. `actor id` or `appId`.
 * @throws InvalidIdError saying what is wrong and what is allowed.
 */
export function checkId(id: unknown, what: string, rules: IdRules = {}): asserts id is string {
  const problem = idProblem(id, rules);
  if (!problem) return;
  throw new InvalidIdError(
    id,
    problem.rule,
    `invalid ${what} ${shown(id)}: it ${problem.detail}; ${idRulesText(rules)}`,
  );
}
