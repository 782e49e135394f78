/**
 * `redactor inspect <app>`: an app's presence, hosts and handled types, its inbox in run order, its
 * leases, its dead letters and its scheduled messages.
 */
import { HANDLES_FIELD, type Handles, parseHandles } from "../../presence.js";
import { listScheduled, type ScheduledMessage } from "../../scheduler.js";
import { arg, type CommandSpec, stringOption } from "../command.js";
import { CommandFailedError, ExitCode } from "../errors.js";
import { parseCount, preview, priorityName, relativeTime, shortDuration } from "../format.js";
import {
  type DeadEntry,
  deadlineMs,
  hostsOf,
  type InboxEntry,
  type InFlightEntry,
  orderingOf,
  readApp,
  readDead,
  readInbox,
  readInFlight,
} from "../queues.js";
import { renderFields, renderTable } from "../table.js";

/** JSON view of an inbox entry. */
export function inboxJson(e: InboxEntry, now: number) {
  const m = e.message;
  return {
    position: e.position,
    id: m.id,
    type: m.type,
    sender: m.sender,
    priority: m.priority,
    timestamp: m.timestamp,
    ageMs: m.timestamp === null ? null : Math.round(now - m.timestamp * 1000),
    deadline: deadlineMs(m),
    score: e.score,
    scoreKind: e.scoreKind,
    problem: m.problem,
    payload: m.payload,
  };
}

/**
 * A failed message waiting for its retry sits in the lease set without a lease, scored by when
 * it is due back in the inbox.
 */
export function retryWait(e: InFlightEntry): boolean {
  return e.lease === null && e.status !== "processing";
}

/** JSON view of a lease (or a retry wait). */
export function inFlightJson(e: InFlightEntry, now: number) {
  return {
    state: retryWait(e) ? "retry-wait" : "leased",
    id: e.message.id,
    type: e.message.type,
    sender: e.message.sender,
    priority: e.message.priority,
    /** Lease deadline, or when a retry wait ends, ms. */
    until: e.leaseDeadlineMs,
    untilInMs: Math.round(e.leaseDeadlineMs - now),
    attempts: e.attempts,
    lease: e.lease,
    status: e.status,
  };
}

/** JSON view of a dead letter. */
export function deadJson(e: DeadEntry) {
  return {
    id: e.id,
    type: e.message?.type ?? null,
    sender: e.message?.sender ?? null,
    priority: e.message?.priority ?? null,
    reason: e.reason,
    error: e.error,
    attempts: e.attempts,
    at: e.atMs,
    message: e.member,
  };
}

/** The dead-letter table, shared with `dlq ls`. */
export function deadTable(entries: readonly DeadEntry[], now: number): string {
  return renderTable(
    [
      { header: "id" },
      { header: "type", max: 24 },
      { header: "from", max: 24 },
      { header: "reason" },
      { header: "error", max: 60 },
      { header: "attempts", align: "right" },
      { header: "died" },
    ],
    entries.map((e) => [
      e.id ?? "-",
      e.message?.type ?? "-",
      e.message?.sender ?? "-",
      e.reason,
      e.error ?? "-",
      e.attempts === null ? "-" : String(e.attempts),
      relativeTime(e.atMs, now),
    ]),
  );
}

/** JSON view of a scheduled message. */
export function scheduledJson(m: ScheduledMessage, now: number) {
  return { id: m.id, type: m.type, sender: m.sender, due: m.dueMs, dueInMs: Math.round(m.dueMs - now) };
}

/** What `inspect` says of the types an app handles (its status hash's `handles` field). */
export function handlesText(handles: Handles | null): string {
  if (!handles) return "- (not announced: a peer, or a redactor process older than this field)";
  const parts = handles.types.length > 0 ? [handles.types.join(", ")] : [];
  if (handles.cut) parts.push("… (more, not listed)");
  if (handles.anyType) parts.push("any other type (fallback)");
  return parts.length > 0 ? parts.join(", ") : "none";
}

function more(shown: number, total: number): string {
  return total > shown ? `… and ${total - shown} more (raise --limit)` : "";
}

/** The `inspect` command. */
export const inspectCommand: CommandSpec = {
  name: "inspect",
  summary:
    "Show an app's presence, the process hosting it and the types it handles, its inbox in the order it will run, its messages in flight, its dead letters and its scheduled messages.",
  description:
    "A redactor inbox runs strict priority first, oldest first within a priority; members a peer " +
    "added with its own score (priority*1000+timestamp) are placed where the next claim re-scores " +
    "them. A peer's inbox (no 'ordering' in its status hash) is shown in the order its ZPOPMAX " +
    "takes it: highest score first, which is newest first within a priority. Priority and age " +
    "come from the message itself, not from the score.",
  args: [{ name: "app", description: "the app id, e.g. HEAR_FC" }],
  options: {
    limit: { type: "string", value: "<n>", description: "rows per section (default 20)" },
    payload: { type: "boolean", description: "add a column with each inbox message's payload" },
  },
  examples: ["redactor inspect HEAR_FC", "redactor inspect HEAR_FC --json | jq '.inbox.entries[0]'"],
  async run(ctx) {
    const app = arg(ctx, "app");
    const limitText = stringOption(ctx, "limit");
    const limit = limitText === undefined ? 20 : parseCount(limitText, "--limit");
    const redis = await ctx.redis();
    const row = await readApp(redis, ctx.keys, app);
    if (!row) {
      throw new CommandFailedError(
        `no app "${app}" on this ${ctx.target.kind}: it has no ${ctx.keys.status(app)} hash and no inbox, ` +
          'leases or dead letters; check the spelling with "redactor ls"',
      );
    }
    const ordering = orderingOf(row.presence);
    const handles = parseHandles(row.presence?.fields[HANDLES_FIELD]);
    const [inbox, inFlight, dead, scheduled] = await Promise.all([
      readInbox(redis, ctx.keys, app, ordering, limit),
      readInFlight(redis, ctx.keys, app, limit),
      readDead(redis, ctx.keys, app, limit),
      listScheduled(redis, ctx.keys, app, limit),
    ]);
    const now = Date.now();
    if (ctx.json) {
      ctx.out(
        JSON.stringify(
          {
            app,
            status: row.state,
            hosts: row.presence?.nodes ?? [],
            handles,
            kind: row.kind,
            lastSeen: row.lastSeen,
            ordering,
            fields: row.presence?.fields ?? {},
            inbox: { total: inbox.total, entries: inbox.entries.map((e) => inboxJson(e, now)) },
            inFlight: { total: inFlight.total, entries: inFlight.entries.map((e) => inFlightJson(e, now)) },
            dead: { total: dead.total, entries: dead.entries.map(deadJson) },
            scheduled: {
              total: scheduled.total,
              entries: scheduled.messages.map((m) => scheduledJson(m, now)),
            },
          },
          null,
          2,
        ),
      );
      return ExitCode.OK;
    }
    const blocks: string[] = [];
    blocks.push(
      renderFields([
        ["app", app],
        [
          "status",
          `${row.state}${row.state === "online" && row.presence?.heartbeat === "alive" ? " (heartbeat alive)" : ""}`,
        ],
        ["last seen", relativeTime(row.lastSeen === null ? null : row.lastSeen * 1000, now)],
        ["hosted by", hostsOf(row)],
        ["handles", handlesText(handles)],
        [
          "order",
          ordering === "canonical"
            ? "redactor: strict priority, oldest first"
            : "peer: highest score first (priority*1000+timestamp: newest first within a priority)",
        ],
      ]),
    );
    const withPayload = ctx.options.payload === true;
    const inboxTitle = `inbox: ${inbox.total} message${inbox.total === 1 ? "" : "s"}`;
    if (inbox.entries.length === 0) blocks.push(inboxTitle);
    else {
      const cols = [
        { header: "#", align: "right" as const },
        { header: "id" },
        { header: "type", max: 24 },
        { header: "from", max: 24 },
        { header: "priority" },
        { header: "age" },
        { header: "deadline" },
        { header: "note", max: 50 },
      ];
      if (withPayload) cols.push({ header: "payload", max: 60 });
      const rows = inbox.entries.map((e) => {
        const m = e.message;
        const deadline = deadlineMs(m);
        const note = m.problem
          ? `refused on claim: ${m.problem}`
          : e.scoreKind === "foreign" && ordering === "canonical"
            ? "peer score, re-scored on next claim"
            : "";
        const cells = [
          e.position === null ? "-" : String(e.position),
          m.id ?? preview(e.member, 36),
          m.type ?? "-",
          m.sender ?? "-",
          priorityName(m.priority),
          m.timestamp === null ? "-" : shortDuration(now - m.timestamp * 1000),
          deadline === null ? "-" : deadline < now ? "passed" : `in ${shortDuration(deadline - now)}`,
          note,
        ];
        if (withPayload) cells.push(preview(m.payload));
        return cells;
      });
      blocks.push(
        [inboxTitle, renderTable(cols, rows), more(inbox.entries.length, inbox.total)]
          .filter(Boolean)
          .join("\n"),
      );
    }
    const flightTitle = `in flight: ${inFlight.total}`;
    if (inFlight.entries.length === 0) blocks.push(flightTitle);
    else {
      const table = renderTable(
        [
          { header: "id" },
          { header: "type", max: 24 },
          { header: "from", max: 24 },
          { header: "priority" },
          { header: "attempts", align: "right" },
          { header: "state" },
          { header: "until" },
          { header: "lease owner", max: 60 },
        ],
        inFlight.entries.map((e) => {
          const due =
            e.leaseDeadlineMs < now
              ? `${shortDuration(now - e.leaseDeadlineMs)} ago`
              : `in ${shortDuration(e.leaseDeadlineMs - now)}`;
          return [
            e.message.id ?? "-",
            e.message.type ?? "-",
            e.message.sender ?? "-",
            priorityName(e.message.priority),
            e.attempts === null ? "-" : String(e.attempts),
            retryWait(e) ? "retry wait" : "leased",
            due,
            e.lease ?? "-",
          ];
        }),
      );
      blocks.push(
        [flightTitle, table, more(inFlight.entries.length, inFlight.total)].filter(Boolean).join("\n"),
      );
    }
    const deadTitle = `dead letters: ${dead.total}`;
    if (dead.entries.length === 0) blocks.push(deadTitle);
    else {
      blocks.push(
        [deadTitle, deadTable(dead.entries, now), more(dead.entries.length, dead.total)]
          .filter(Boolean)
          .join("\n"),
      );
    }
    const scheduledTitle = `scheduled: ${scheduled.total}`;
    if (scheduled.messages.length === 0) blocks.push(scheduledTitle);
    else {
      const table = renderTable(
        [
          { header: "due" },
          { header: "at" },
          { header: "id" },
          { header: "type", max: 24 },
          { header: "from", max: 24 },
        ],
        scheduled.messages.map((m) => [
          m.dueMs <= now ? "due now" : `in ${shortDuration(m.dueMs - now)}`,
          new Date(m.dueMs).toISOString(),
          m.id,
          m.type ?? "-",
          m.sender ?? "-",
        ]),
      );
      blocks.push(
        [scheduledTitle, table, more(scheduled.messages.length, scheduled.total)].filter(Boolean).join("\n"),
      );
    }
    ctx.out(blocks.join("\n\n"));
    return ExitCode.OK;
  },
};
