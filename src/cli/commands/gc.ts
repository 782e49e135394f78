/** `redactor gc`: remove what processes that are gone left behind (dry run unless --yes). */
import { DEFAULT_GC_GRACE_MS, executeGc, type GcAction, planGc } from "../../hygiene.js";
import { type CommandSpec, stringOption } from "../command.js";
import { ExitCode } from "../errors.js";
import { parseDuration } from "../format.js";
import { renderTable } from "../table.js";

function rowsOf(actions: readonly GcAction[]): string[][] {
  return actions.map((a) => [a.app, a.key, a.op === "delete" ? "delete key" : `remove ${a.count}`, a.reason]);
}

/** The `gc` command. */
export const gcCommand: CommandSpec = {
  name: "gc",
  summary: "Remove leftovers of processes that are gone (dry run unless --yes).",
  description:
    "Judges only apps redactor made for a process: a process's own appId (role system in its " +
    "status hash) and the CLI's ids (redactor-cli, redactor-ask-…, redactor-run-…), once no live " +
    "process serves them: their outbox copies, the replies and expired messages in their inbox " +
    "(every message, for a CLI id) and, when nothing else is left, their status hash; and inboxes " +
    "nobody ever announced (no status hash, e.g. an ask to a misspelled id) that hold only " +
    "replies and expired messages. Only what is older than --grace goes. Actors (online or not), " +
    'peers\' apps and dead letters are never touched; use "redactor forget" for one app.',
  args: [],
  options: {
    yes: { type: "boolean", short: "y", description: "remove (without it, only print what would go)" },
    grace: {
      type: "string",
      value: "<duration>",
      description: "only leftovers older than this (default 1h; 10m, 2h, 1d)",
    },
  },
  examples: ["redactor gc", "redactor gc --grace 10m --yes", "redactor gc --json | jq '.actions[].key'"],
  async run(ctx) {
    const graceText = stringOption(ctx, "grace");
    const graceMs = graceText === undefined ? DEFAULT_GC_GRACE_MS : parseDuration(graceText, "--grace");
    const redis = await ctx.redis();
    const plan = await planGc(redis, ctx.keys, { graceMs });
    const act = ctx.options.yes === true;
    const result = act ? await executeGc(redis, ctx.keys, plan) : null;
    const actions = result ? result.done : plan.actions;
    const strip = (a: GcAction) => ({
      app: a.app,
      kind: a.kind,
      key: a.key,
      op: a.op,
      count: a.count,
      reason: a.reason,
    });
    if (ctx.json) {
      ctx.out(
        JSON.stringify({
          dryRun: !act,
          graceMs,
          actions: actions.map(strip),
          kept: plan.kept,
          skipped: result?.skipped ?? [],
        }),
      );
      return ExitCode.OK;
    }
    if (actions.length === 0) ctx.err("nothing to remove");
    else {
      ctx.out(
        renderTable(
          [
            { header: "app", max: 40 },
            { header: "key", max: 60 },
            { header: "what" },
            { header: "why", max: 90 },
          ],
          rowsOf(actions),
        ),
      );
    }
    for (const k of [...plan.kept, ...(result?.skipped ?? [])]) ctx.err(`left ${k.app}: ${k.reason}`);
    if (!act && actions.length > 0)
      ctx.err('dry run: nothing removed; run "redactor gc --yes" to remove these');
    return ExitCode.OK;
  },
};
