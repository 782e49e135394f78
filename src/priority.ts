/**
 * Priorities and the inbox score. The peers score with `priority * 1000 + timestamp` and pop
 * the highest score, which runs the newest message first and lets a late LOW outrank an old
 * CRITICAL (docs/PROTOCOL.md). Inboxes owned by redactor use a score that is strict priority first and
 * then oldest first, still "highest score runs first" so ZPOPMAX keeps its meaning:
 *
 *   score = 2^52 + (priority - 1) * 2^50 + (2^50 - 1 - µs since 2024-01-01)
 *
 * Every such score is an exact integer in [2^52, 2^53), so anything outside that band was
 * written by someone else and is re-scored from the message itself before it is claimed.
 * `src/lua/includes/score.lua` is the same formula for the scripts.
 */
import { localClock } from "./clock.js";

/** Message priorities of the wire protocol; higher runs first. */
export const Priority = {
  LOW: 1,
  NORMAL: 2,
  HIGH: 3,
  CRITICAL: 4,
} as const;

/** One of the four wire priorities. */
export type Priority = (typeof Priority)[keyof typeof Priority];

/** Lowest score of the canonical band. */
export const SCORE_BASE = 2 ** 52;
/** Width of one priority level inside the band, in microseconds (about 35 years). */
export const SCORE_BAND = 2 ** 50;
/** The canonical scores count microseconds from 2024-01-01T00:00:00Z. */
export const SCORE_EPOCH_US = 1_704_067_200_000_000;

/** True for an integer 1-4. */
export function isPriority(value: unknown): value is Priority {
  return value === 1 || value === 2 || value === 3 || value === 4;
}

/** The canonical inbox score of a message sent at `timestampUs` (µs since the Unix epoch). */
export function canonicalScore(priority: Priority, timestampUs: number): number {
  let rel = timestampUs - SCORE_EPOCH_US;
  if (rel < 0) rel = 0;
  else if (rel > SCORE_BAND - 1) rel = SCORE_BAND - 1;
  return SCORE_BASE + (priority - 1) * SCORE_BAND + (SCORE_BAND - 1 - rel);
}

/** The priority a canonical score stands for, or null for a score outside the band. */
export function priorityOfScore(score: number): Priority | null {
  if (!(score >= SCORE_BASE && score < 2 ** 53)) return null;
  return (Math.floor((score - SCORE_BASE) / SCORE_BAND) + 1) as Priority;
}

/** The peers' score, used when the recipient is not a redactor inbox. */
export function wireScore(priority: Priority, timestampSeconds: number): number {
  return priority * 1000 + timestampSeconds;
}

/**
 * Microseconds since the Unix epoch by the local wall clock, strictly increasing within this
 * process, so that two messages sent in the same microsecond still keep their order. A running
 * system stamps its messages with its own clock instead (Redis' time, src/clock.ts).
 */
export function monotonicMicros(): number {
  return localClock.nowMicros();
}
