/**
 * The message lifecycle, one XState machine and the single source of truth for which status
 * may follow which. The runtime never writes a status it did not get from `nextStatus`, and
 * the Lua scripts receive their target statuses from it (see mailbox.ts), so Redis-side writes
 * follow the machine. The machine is evaluated as a pure transition and flattened once into a
 * table: no interpreted actor per message.
 */
import { createMachine, getInitialSnapshot, getNextSnapshot } from "xstate";
import { IllegalTransitionError } from "./errors.js";

/**
 * The statuses a `message:<id>` hash can hold: the five strings of docs/PROTOCOL.md, plus
 * redactor's `scheduled` (waiting for its due time, not in any inbox yet) and `cancelled` (a
 * scheduled message cancelled before it was due).
 */
export type MessageStatus =
  | "pending"
  | "processing"
  | "completed"
  | "failed"
  | "timeout"
  | "scheduled"
  | "cancelled";

/** What can happen to a message. */
export type LifecycleEvent =
  /** A consumer took it from the inbox under a lease. */
  | "CLAIM"
  /** Its deadline (`timestamp + timeout`) passed before its handler started. */
  | "EXPIRE"
  /** Refused before any handler ran: malformed, oversized, wrong envelope. */
  | "REJECT"
  /** Its handler finished. */
  | "COMPLETE"
  /** Its handler failed, or it cannot be handled (no handler, schema); final. */
  | "FAIL"
  /** Its handler failed and it goes back to the inbox for another attempt. */
  | "RETRY"
  /** Handed back unprocessed (shutdown, lost lease): no attempt is spent. */
  | "RELEASE"
  /** A scheduled message's due time came: it was put in the inbox (src/lua/promote.lua). */
  | "DUE"
  /** A scheduled message was cancelled before it was due (src/lua/cancel.lua). */
  | "CANCEL";

/** Every event name, for tables and tests. */
export const LIFECYCLE_EVENTS: readonly LifecycleEvent[] = [
  "CLAIM",
  "EXPIRE",
  "REJECT",
  "COMPLETE",
  "FAIL",
  "RETRY",
  "RELEASE",
  "DUE",
  "CANCEL",
];

/**
 * The lifecycle machine itself. A message sent now starts `pending` (the initial state); a
 * scheduled one starts `scheduled` ({@link ENTRY_STATUSES}) and becomes `pending` when due.
 */
export const lifecycleMachine = createMachine({
  id: "message",
  types: {} as { events: { type: LifecycleEvent } },
  initial: "pending",
  states: {
    pending: {
      on: { CLAIM: "processing", EXPIRE: "timeout", REJECT: "failed" },
    },
    processing: {
      on: {
        COMPLETE: "completed",
        FAIL: "failed",
        RETRY: "pending",
        RELEASE: "pending",
        EXPIRE: "timeout",
      },
    },
    completed: { type: "final" },
    failed: { type: "final" },
    timeout: { type: "final" },
    scheduled: {
      on: { DUE: "pending", CANCEL: "cancelled" },
    },
    cancelled: { type: "final" },
  },
});

/** Every status, in the machine's order. */
export const MESSAGE_STATUSES = Object.keys(lifecycleMachine.root.states) as MessageStatus[];

/** The machine, flattened: table[from][event] = to. */
const table: Record<string, Partial<Record<LifecycleEvent, MessageStatus>>> = (() => {
  const out: Record<string, Partial<Record<LifecycleEvent, MessageStatus>>> = {};
  const initial = getInitialSnapshot(lifecycleMachine);
  for (const from of MESSAGE_STATUSES) {
    out[from] = {};
    const snapshot = lifecycleMachine.resolveState({ ...initial, value: from } as never);
    for (const event of LIFECYCLE_EVENTS) {
      if (!snapshot.can({ type: event })) continue;
      const next = getNextSnapshot(lifecycleMachine, snapshot, { type: event });
      (out[from] as Record<string, MessageStatus>)[event] = next.value as MessageStatus;
    }
  }
  return out;
})();

/** The status after `event` in status `from`; throws IllegalTransitionError if not allowed. */
export function nextStatus(from: MessageStatus, event: LifecycleEvent): MessageStatus {
  const to = table[from]?.[event];
  if (to === undefined) throw new IllegalTransitionError(from, event);
  return to;
}

/** True when `event` is allowed in status `from`. */
export function canTransition(from: MessageStatus, event: LifecycleEvent): boolean {
  return table[from]?.[event] !== undefined;
}

/** True for statuses no event leaves. */
export function isFinalStatus(status: MessageStatus): boolean {
  return Object.keys(table[status] ?? {}).length === 0;
}

/** The statuses the scripts write, each taken from the machine. */
export const STATUS = {
  pending: getInitialSnapshot(lifecycleMachine).value as MessageStatus,
  processing: nextStatus("pending", "CLAIM"),
  timedOut: nextStatus("pending", "EXPIRE"),
  rejected: nextStatus("pending", "REJECT"),
  completed: nextStatus("processing", "COMPLETE"),
  released: nextStatus("processing", "RELEASE"),
  /** The status a scheduled message starts in: the state whose DUE leads to `pending`. */
  scheduled: MESSAGE_STATUSES.find((s) => table[s]?.DUE === "pending") as MessageStatus,
  cancelled: nextStatus(MESSAGE_STATUSES.find((s) => table[s]?.DUE === "pending") as MessageStatus, "CANCEL"),
} as const;

/** The statuses a message starts in: `pending` when sent now, `scheduled` when sent for later. */
export const ENTRY_STATUSES: readonly MessageStatus[] = [STATUS.pending, STATUS.scheduled];
