/** `redactor dlq ls|retry|purge <app>`: the dead letters of an app (`queue:<app>:dead`). */
import type { RedisClient } from "../../cluster.js";
import { purgeDeadLetters, retryDeadLetters } from "../../dead-letters.js";
import type { Keyspace } from "../../keyspace.js";
import { HANDLES_FIELD, parseHandles, readStatus } from "../../presence.js";
import { arg, type CommandContext, type CommandGroup, type CommandSpec, stringOption } from "../command.js";
import { ExitCode, UsageError } from "../errors.js";
import { parseCount, parseDuration } from "../format.js";
import { readDead } from "../queues.js";
import { renderTable } from "../table.js";
import { deadJson, deadTable } from "./inspect.js";

const appArg = { name: "app", description: "the app whose dead letters to use" } as const;
const idsArg = {
  name: "id",
  optional: true,
  variadic: true,
  description: "only the dead letters of these message ids (default: all)",
} as const;

function idsOf(ctx: CommandContext): string[] {
  return (ctx.args.id as string[] | undefined) ?? [];
}

const lsCommand: CommandSpec = {
  name: "dlq ls",
  summary: "List an app's dead letters, newest first: id, type, sender, reason, error, attempts.",
  args: [appArg],
  options: { limit: { type: "string", value: "<n>", description: "how many to show (default 50)" } },
  examples: ["redactor dlq ls HEAR_FC", "redactor dlq ls HEAR_FC --json | jq '.entries[].error'"],
  async run(ctx) {
    const app = arg(ctx, "app");
    const limitText = stringOption(ctx, "limit");
    const limit = limitText === undefined ? 50 : parseCount(limitText, "--limit");
    const { total, entries } = await readDead(await ctx.redis(), ctx.keys, app, limit);
    if (ctx.json) {
      ctx.out(JSON.stringify({ app, total, entries: entries.map(deadJson) }, null, 2));
      return ExitCode.OK;
    }
    if (total === 0) {
      ctx.out(`no dead letters for ${app}`);
      return ExitCode.OK;
    }
    ctx.out(deadTable(entries, Date.now()));
    if (total > entries.length) ctx.out(`… and ${total - entries.length} more (raise --limit)`);
    return ExitCode.OK;
  },
};

/**
 * The types among `types` that `app` has no handler for, by the `handles` field of its status
 * hash (written by the redactor process serving it); none when the hash has no such field (a
 * peer, an older process) or the actor takes any type (a fallback) or the list was cut.
 */
export async function unhandledTypes(
  redis: RedisClient,
  keys: Keyspace,
  app: string,
  types: readonly (string | null)[],
): Promise<{ unhandled: string[]; handled: string[] }> {
  const status = await readStatus(redis, keys, app);
  const handles = parseHandles(status?.fields[HANDLES_FIELD]);
  if (!handles?.complete) return { unhandled: [], handled: handles?.types ?? [] };
  const known = new Set(handles.types);
  const unhandled = [...new Set(types.filter((t): t is string => t !== null && !known.has(t)))];
  return { unhandled, handled: handles.types };
}

const retryCommand: CommandSpec = {
  name: "dlq retry",
  summary: "Put dead letters back in the app's inbox, status pending, for another run.",
  description:
    "Each message goes back byte for byte, in one atomic step per letter, scored as a send would " +
    "score it (a redactor inbox: its priority, then its original send time, so it runs before newer " +
    "messages of the same priority; a peer's inbox: priority * 1000 + timestamp); its message:<id> " +
    "status becomes pending, its attempts start again from 0, and the app is woken as by a send. A " +
    "letter already retried or purged meanwhile, or whose id was sent again, is skipped and nothing " +
    "is written. Dead letters that cannot run again (malformed, oversize) are skipped. Warns when the app's actor (by the 'handles' field of " +
    "its status hash) has no handler for a retried message's type: it would be dead-lettered again. " +
    "Exits 1 when an id given is not found or cannot be retried.",
  args: [appArg, idsArg],
  options: {
    limit: {
      type: "string",
      value: "<n>",
      description: "without ids: retry at most this many, oldest first (default 1000)",
    },
  },
  examples: ["redactor dlq retry HEAR_FC", "redactor dlq retry HEAR_FC 5f0c2d1e-… 77aa01b2-…"],
  async run(ctx) {
    const app = arg(ctx, "app");
    const ids = idsOf(ctx);
    const limitText = stringOption(ctx, "limit");
    if (ids.length > 0 && limitText !== undefined) {
      throw new UsageError("--limit applies only without ids", "dlq retry");
    }
    const limit = limitText === undefined ? 1000 : parseCount(limitText, "--limit");
    const redis = await ctx.redis();
    const { retried, skipped, notFound, remaining } = await retryDeadLetters(
      redis,
      ctx.keys,
      app,
      ids.length > 0 ? { ids } : { limit },
    );
    const { unhandled, handled } = await unhandledTypes(
      redis,
      ctx.keys,
      app,
      retried.map((r) => r.type),
    );
    const warnings = unhandled.map(
      (type) =>
        `warning: ${app} has no handler for type "${type}" (it handles ${handled.length > 0 ? handled.join(", ") : "no type"}); ` +
        "those messages will be dead-lettered again as unknown-type unless its actor gets a handler for it",
    );
    if (ctx.json) ctx.out(JSON.stringify({ app, retried, skipped, notFound, remaining, warnings }, null, 2));
    else {
      if (retried.length > 0) {
        ctx.out(
          renderTable(
            [{ header: "retried" }, { header: "type" }, { header: "note" }],
            retried.map((r) => [
              r.id,
              r.type ?? "-",
              r.deadlinePassed ? "its deadline has passed: it will be marked timeout, not run" : "",
            ]),
          ),
        );
      }
      for (const s of skipped) ctx.err(`skipped ${s.id ?? "(no id)"}: ${s.reason}`);
      for (const warning of warnings) ctx.err(warning);
      for (const id of notFound) ctx.err(`no dead letter with id ${id} in ${ctx.keys.dead(app)}`);
      ctx.err(
        `${retried.length} dead letter${retried.length === 1 ? "" : "s"} of ${app} back in its inbox; ${remaining} left`,
      );
    }
    const failed = notFound.length > 0 || (ids.length > 0 && skipped.length > 0);
    return failed ? ExitCode.FAILURE : ExitCode.OK;
  },
};

const purgeCommand: CommandSpec = {
  name: "dlq purge",
  summary: "Delete an app's dead letters: all of them, those of some ids, or those older than a duration.",
  args: [appArg, idsArg],
  options: {
    "older-than": {
      type: "string",
      value: "<duration>",
      description: "only dead letters that died longer ago than this (e.g. 7d, 12h)",
    },
  },
  examples: ["redactor dlq purge HEAR_FC", "redactor dlq purge HEAR_FC --older-than 7d"],
  async run(ctx) {
    const app = arg(ctx, "app");
    const ids = idsOf(ctx);
    const olderText = stringOption(ctx, "older-than");
    if (ids.length > 0 && olderText !== undefined) {
      throw new UsageError("give either ids or --older-than, not both", "dlq purge");
    }
    const key = ctx.keys.dead(app);
    const { purged, notFound, remaining } = await purgeDeadLetters(
      await ctx.redis(),
      ctx.keys,
      app,
      ids.length > 0
        ? { ids }
        : olderText !== undefined
          ? { olderThanMs: parseDuration(olderText, "--older-than") }
          : { all: true },
    );
    if (ctx.json) ctx.out(JSON.stringify({ app, purged, notFound, remaining }));
    else {
      for (const id of notFound) ctx.err(`no dead letter with id ${id} in ${key}`);
      ctx.out(`purged ${purged} dead letter${purged === 1 ? "" : "s"} of ${app}; ${remaining} left`);
    }
    return notFound.length > 0 ? ExitCode.FAILURE : ExitCode.OK;
  },
};

/** The `dlq` command group. */
export const dlqGroup: CommandGroup = {
  name: "dlq",
  summary: "Dead letters: list, retry or purge them.",
  description:
    "Messages that failed (handler error, unknown type, payload failing its schema, malformed or " +
    "oversize) are kept in queue:<app>:dead with the error, newest last.",
  subcommands: [lsCommand, retryCommand, purgeCommand],
};
