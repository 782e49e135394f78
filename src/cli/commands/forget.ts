/** `redactor forget <app>`: delete every key of one app (dry run unless --yes). */
import { executeForget, planForget } from "../../hygiene.js";
import { arg, type CommandSpec } from "../command.js";
import { CommandFailedError, ExitCode } from "../errors.js";
import { renderTable } from "../table.js";

/** The `forget` command. */
export const forgetCommand: CommandSpec = {
  name: "forget",
  summary: "Delete every key of one app (dry run unless --yes).",
  description:
    "Lists, and with --yes deletes, every key the app has (its inbox, outbox, processing, dead, " +
    "scheduled sets, status:<app>, activation:<app>, state:<app>, timers:<app>:specs, :due and :last), " +
    "the message hashes of messages sent to it (message:{app}:* on the cluster layout; on the " +
    "peers' layout those of the messages in its queues) and its entry in redactor:scheduled. " +
    "Refuses an app that a live process serves or owns, or whose presence hash says online (a " +
    "peer), unless --force. Messages in its inbox are lost: read them first (redactor inspect).",
  args: [{ name: "app", description: "the app id whose keys to delete" }],
  options: {
    yes: { type: "boolean", short: "y", description: "delete (without it, only print what would go)" },
    force: { type: "boolean", description: "delete even if the app is online or owned by a live process" },
  },
  examples: ["redactor forget HEAR_FX", "redactor forget HEAR_FX --yes", "redactor forget old-app --json"],
  async run(ctx) {
    const app = arg(ctx, "app");
    const redis = await ctx.redis();
    const plan = await planForget(redis, ctx.keys, app);
    const act = ctx.options.yes === true;
    const force = ctx.options.force === true;
    const refused = plan.inUse !== null && !force;
    const empty = plan.keys.length === 0 && plan.messageHashes.length === 0 && !plan.indexEntry;
    let deleted: number | null = null;
    if (act && !refused && !empty) deleted = (await executeForget(redis, ctx.keys, plan, { force })).deleted;
    if (ctx.json) {
      ctx.out(
        JSON.stringify({
          app,
          dryRun: !act,
          inUse: plan.inUse,
          refused,
          keys: plan.keys,
          messageHashes: plan.messageHashes.length,
          indexEntry: plan.indexEntry,
          deleted,
        }),
      );
    } else if (empty) {
      ctx.err(`"${app}" has no keys on this ${ctx.target.kind}; nothing to forget`);
    } else {
      const rows = plan.keys.map((k) => [k.key, k.kind]);
      if (plan.messageHashes.length > 0)
        rows.push([`${plan.messageHashes.length} message hash(es)`, "message"]);
      if (plan.indexEntry) rows.push([`${ctx.keys.scheduledIndex()} entry "${app}"`, "index"]);
      ctx.out(renderTable([{ header: "key", max: 80 }, { header: "kind" }], rows));
      if (deleted !== null) ctx.err(`deleted ${deleted} key(s) of "${app}"`);
      else if (!refused)
        ctx.err(`dry run: nothing deleted; run "redactor forget ${app} --yes" to delete these`);
    }
    if (refused) {
      throw new CommandFailedError(
        `"${app}" is in use (${plan.inUse}); nothing deleted. Stop what serves it first, or pass --force ` +
          "if you are sure it is gone (a peer that died still says online)",
      );
    }
    return ExitCode.OK;
  },
};
