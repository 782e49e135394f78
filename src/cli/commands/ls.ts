/** `redactor ls`: every app with its presence and queue sizes. */
import type { CommandSpec } from "../command.js";
import { ExitCode } from "../errors.js";
import { relativeTime } from "../format.js";
import { hostsOf, listApps } from "../queues.js";
import { renderTable } from "../table.js";

/** The `ls` command. */
export const lsCommand: CommandSpec = {
  name: "ls",
  summary: "List apps: presence, last seen, inbox depth, messages in flight, dead letters.",
  description:
    "Apps are found by SCAN (never KEYS; on a cluster, of every master) over status:* presence " +
    "hashes and queue:* keys, so peers that never announced themselves still appear when they " +
    "have an inbox. STATUS is online only " +
    "while the app's heartbeat is fresh; 'stale' means it said online but its process stopped " +
    "beating. KIND is 'redactor' for inboxes ordered by the canonical score, 'peer' otherwise. " +
    "HOSTED BY names the live redactor processes serving the app (one, for a single-activation actor).",
  args: [],
  options: {
    online: { type: "boolean", description: "only apps that are online now" },
  },
  examples: ["redactor ls", "redactor ls --online --json | jq '.[].app'"],
  async run(ctx) {
    const redis = await ctx.redis();
    let rows = await listApps(redis, ctx.keys);
    if (ctx.options.online) rows = rows.filter((r) => r.state === "online");
    if (ctx.json) {
      ctx.out(
        JSON.stringify(
          rows.map((r) => ({
            app: r.app,
            status: r.state,
            online: r.state === "online",
            kind: r.kind,
            hosts: r.presence?.nodes ?? [],
            heartbeat: r.presence?.heartbeat ?? null,
            lastSeen: r.lastSeen,
            inbox: r.inbox,
            inFlight: r.inFlight,
            dead: r.dead,
            fields: r.presence?.fields ?? {},
          })),
          null,
          2,
        ),
      );
      return ExitCode.OK;
    }
    if (rows.length === 0) {
      ctx.err(`no apps found: no status:* hashes and no queue:* keys on this ${ctx.target.kind}`);
      return ExitCode.OK;
    }
    const now = Date.now();
    ctx.out(
      renderTable(
        [
          { header: "app", max: 48 },
          { header: "status" },
          { header: "kind" },
          { header: "hosted by", max: 40 },
          { header: "last seen" },
          { header: "inbox", align: "right" },
          { header: "in flight", align: "right" },
          { header: "dead", align: "right" },
        ],
        rows.map((r) => [
          r.app,
          r.state,
          r.kind,
          hostsOf(r),
          relativeTime(r.lastSeen === null ? null : r.lastSeen * 1000, now),
          String(r.inbox),
          String(r.inFlight),
          String(r.dead),
        ]),
      ),
    );
    return ExitCode.OK;
  },
};
