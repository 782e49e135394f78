/** `redactor message <id>`: one message's status, where it is, and what happened to it. */
import { findMessageHash } from "../../inspection.js";
import { arg, type CommandSpec, stringOption } from "../command.js";
import { CommandFailedError, ExitCode, UsageError } from "../errors.js";
import { isoTime, preview, priorityName, relativeTime, shortDuration } from "../format.js";
import {
  deadlineMs,
  locateMessage,
  type MessageSummary,
  type Sighting,
  scanQueueApps,
  summarize,
} from "../queues.js";
import { renderFields } from "../table.js";

interface HistoryItem {
  /** ms; null when the time is not recorded. */
  at: number | null;
  event: string;
  detail: string;
}

function describe(s: Sighting, now: number, leased: boolean): string {
  switch (s.where) {
    case "inbox":
      return `in the inbox of ${s.app}${s.rank === undefined ? "" : `, position ${s.rank}`}`;
    case "in-flight": {
      const when =
        s.score < now ? `${shortDuration(now - s.score)} ago` : `in ${shortDuration(s.score - now)}`;
      return leased
        ? `in flight at ${s.app}, lease ends ${when}`
        : `waiting to retry at ${s.app}, due ${when}`;
    }
    case "dead":
      return `in the dead letters of ${s.app} (${s.dead?.reason ?? "?"})`;
    case "outbox":
      return `a copy in the outbox of ${s.app}`;
  }
}

function history(
  fields: Record<string, string>,
  message: MessageSummary | null,
  sightings: readonly Sighting[],
): HistoryItem[] {
  const items: HistoryItem[] = [];
  const ts = fields.timestamp !== undefined ? Number(fields.timestamp) : message?.timestamp;
  const sender = fields.sender ?? message?.sender ?? "?";
  const recipient = fields.recipient ?? message?.recipient ?? "?";
  const by = `by ${sender} to ${recipient}${message ? `, priority ${priorityName(message.priority)}` : ""}`;
  // A scheduled message's timestamp is its due time: it was not sent then (yet), it falls due.
  const due = dueMs(fields);
  if (due !== null) items.push({ at: null, event: "scheduled", detail: `${by}, due ${isoTime(due)}` });
  if (fields.status === "cancelled") {
    items.push({ at: null, event: "cancelled", detail: "cancelled before it was due (system.cancel)" });
  } else if (fields.status !== "scheduled") {
    items.push({
      at: ts === undefined || ts === null || Number.isNaN(ts) ? null : ts * 1000,
      event: due === null ? "sent" : "due",
      detail: due === null ? by : `moved into the inbox of ${recipient}`,
    });
  }
  const attempts = fields.attempts === undefined ? 0 : Number(fields.attempts);
  if (attempts > 0)
    items.push({ at: null, event: "claimed", detail: `${attempts} time${attempts === 1 ? "" : "s"}` });
  const deaths = sightings.filter((s) => s.where === "dead").sort((a, b) => a.score - b.score);
  for (const s of deaths) {
    if (s.dead) {
      items.push({
        at: s.dead.atMs,
        event: "dead-lettered",
        detail: `${s.dead.reason}${s.dead.error ? `: ${s.dead.error}` : ""}`,
      });
    }
  }
  if (fields.finished_at !== undefined) {
    items.push({
      at: Number(fields.finished_at),
      event: fields.status ?? "finished",
      detail: fields.error && fields.status !== "completed" ? fields.error : "",
    });
  } else if (fields.status === "timeout") {
    items.push({ at: null, event: "timeout", detail: fields.error ?? "deadline passed before it started" });
  }
  return items;
}

/** A scheduled message's due time (its hash's `due` field, ms), or null when it has none. */
function dueMs(fields: Record<string, string>): number | null {
  const due = fields.due === undefined || fields.due === "" ? Number.NaN : Number(fields.due);
  return Number.isFinite(due) ? due : null;
}

/** The `message` command. */
export const messageCommand: CommandSpec = {
  name: "message",
  summary:
    "Show one message: its status hash, where it sits (inbox, in flight, dead letters) and its history.",
  description:
    "Reads message:<id> (status, sender, recipient, timestamp, type, attempts, lease, error, " +
    "finished_at) and looks for the message itself in the recipient's inbox, lease set and dead " +
    "letters and in the sender's outbox. The hash expires (24 h after its last change by default); " +
    "without it every app's queues are searched. In the cluster layout (--cluster, --hash-tag) the " +
    "hash is message:{recipient}:<id>: give the recipient with --app, or it is found by SCAN of " +
    "every master. Exits 1 when the id is found nowhere.",
  args: [{ name: "id", description: "the message id" }],
  options: {
    app: {
      type: "string",
      value: "<app>",
      description:
        "the recipient: read its message:{app}:<id> hash without a SCAN (cluster layout), search its queues",
    },
  },
  examples: ["redactor message 5f0c2d1e-…", "redactor message 5f0c2d1e-… --json | jq .status"],
  async run(ctx) {
    const id = arg(ctx, "id");
    if (id === "") throw new UsageError("missing <id>: the message id (an empty id is none)", "message");
    const redis = await ctx.redis();
    const appOption = stringOption(ctx, "app");
    const { key, others } = await findMessageHash(redis, ctx.keys, id, appOption);
    const [fields, ttl] = await Promise.all([redis.hgetall(key), redis.ttl(key)]);
    const known = Object.keys(fields).length > 0;
    for (const other of others) {
      ctx.err(`note: message ${id} has another hash, ${other}: the id was sent to more than one app`);
    }
    const apps = appOption
      ? [appOption]
      : fields.recipient
        ? [fields.recipient]
        : [...(await scanQueueApps(redis, ctx.keys))].sort();
    const sightings = await locateMessage(redis, ctx.keys, id, apps, fields.sender ?? null);
    if (!known && sightings.length === 0) {
      throw new CommandFailedError(
        `unknown message "${id}": no ${key} hash (it expires a day after its last change) and no copy in ` +
          `${appOption ? `the queues of ${appOption}` : "any app's inbox, leases or dead letters"}`,
      );
    }
    const carrier = sightings.find((s) => s.where !== "dead") ?? sightings.find((s) => s.dead?.member);
    // A scheduled message is in no queue yet: its hash holds it (`member`) until it is due.
    const member =
      (carrier ? (carrier.where === "dead" ? carrier.dead?.member : carrier.member) : undefined) ??
      fields.member;
    const app = appOption ?? fields.recipient;
    const scheduledAt =
      fields.status === "scheduled" && app !== undefined
        ? await redis.zscore(ctx.keys.scheduled(app), id)
        : null;
    const due = scheduledAt === null ? dueMs(fields) : Number(scheduledAt);
    const message = member ? summarize(member) : null;
    const items = history(fields, message, sightings);
    const now = Date.now();
    if (ctx.json) {
      ctx.out(
        JSON.stringify(
          {
            id,
            status: fields.status ?? null,
            due,
            fields,
            ttlSeconds: ttl >= 0 ? ttl : null,
            message: message && {
              sender: message.sender,
              recipient: message.recipient,
              type: message.type,
              priority: message.priority,
              timestamp: message.timestamp,
              timeout: message.timeout,
              replyTo: message.replyTo,
              payload: message.payload,
              problem: message.problem,
            },
            locations: [
              ...(scheduledAt !== null && app !== undefined
                ? [{ where: "scheduled", app, score: Number(scheduledAt) }]
                : []),
              ...sightings.map((s) => ({
                where: s.where,
                app: s.app,
                score: s.score,
                ...(s.rank === undefined ? {} : { position: s.rank }),
                ...(s.dead ? { reason: s.dead.reason, error: s.dead.error, at: s.dead.atMs } : {}),
              })),
            ],
            history: items,
          },
          null,
          2,
        ),
      );
      return ExitCode.OK;
    }
    const queued = sightings.filter((s) => s.where !== "outbox");
    const where =
      queued.length > 0
        ? queued.map((s) => describe(s, now, fields.lease !== undefined)).join("; ")
        : scheduledAt !== null && app !== undefined
          ? `scheduled (${ctx.keys.scheduled(app)}), due ${relativeTime(Number(scheduledAt), now)}`
          : fields.status === "pending"
            ? "not in any inbox: taken by a peer (ZPOPMAX), or deleted"
            : "not queued";
    const deadline = message ? deadlineMs(message) : null;
    const rows: [string, string][] = [
      ["id", id],
      ["status", fields.status ?? "- (no message hash: expired or never written)"],
      ["type", fields.type ?? message?.type ?? "-"],
      [
        "from → to",
        `${fields.sender ?? message?.sender ?? "?"} → ${fields.recipient ?? message?.recipient ?? "?"}`,
      ],
      ["priority", message ? priorityName(message.priority) : "-"],
      ["due", due === null ? "-" : `${isoTime(due)} (${relativeTime(due, now)})`],
      ["deadline", deadline === null ? "-" : `${isoTime(deadline)} (${relativeTime(deadline, now)})`],
      ["attempts", fields.attempts ?? "0"],
      ["lease", fields.lease || "-"],
      ["error", fields.error ?? "-"],
      ["where", where],
      ["hash expires", ttl >= 0 ? `in ${shortDuration(ttl * 1000)}` : known ? "never" : "-"],
    ];
    if (message?.replyTo) rows.splice(6, 0, ["reply to", message.replyTo]);
    if (message) rows.push(["payload", preview(message.payload, 200)]);
    if (message?.problem) rows.push(["problem", message.problem]);
    const lines = items.map(
      (h) =>
        `  ${h.at === null ? "-".padEnd(24) : isoTime(h.at)}  ${h.event}${h.detail ? `  ${h.detail}` : ""}`,
    );
    ctx.out(`${renderFields(rows)}\n\nhistory\n${lines.join("\n")}`);
    return ExitCode.OK;
  },
};
