#!/usr/bin/env node
/**
 * The `redactor` command: look at and poke at the apps, inboxes and messages in a Redis server,
 * and run actors. Every command honours `--redis` / `REDIS_URL` (one server) and `--cluster` /
 * `REDIS_CLUSTER` (a Redis Cluster), prints tables for people and JSON with `--json`, and exits
 * 0 (done), 1 (failed: see the message) or 2 (bad command line).
 */
import { readFileSync, realpathSync } from "node:fs";
import { fileURLToPath } from "node:url";
import type { RedisClient } from "../cluster.js";
import { RedactorError } from "../errors.js";
import { Keyspace } from "../keyspace.js";
import {
  type CommandContext,
  type CommandGroup,
  type CommandSpec,
  checkAppIds,
  commandHelp,
  GLOBAL_OPTIONS,
  groupHelp,
  type ParsedCommand,
  parseCommand,
  splitWord,
  stringOption,
  usageLine,
} from "./command.js";
import { dashboardCommand } from "./commands/dashboard.js";
import { dlqGroup } from "./commands/dlq.js";
import { forgetCommand } from "./commands/forget.js";
import { gcCommand } from "./commands/gc.js";
import { inspectCommand } from "./commands/inspect.js";
import { lsCommand } from "./commands/ls.js";
import { messageCommand } from "./commands/message.js";
import { runCommand } from "./commands/run.js";
import { askCommand, sendCommand } from "./commands/send.js";
import { tailCommand } from "./commands/tail.js";
import { closeRedis, connect, resolveTarget, type Target } from "./connect.js";
import { ExitCode, UsageError } from "./errors.js";

const COMMANDS: readonly (CommandSpec | CommandGroup)[] = [
  lsCommand,
  inspectCommand,
  sendCommand,
  askCommand,
  tailCommand,
  messageCommand,
  dlqGroup,
  runCommand,
  dashboardCommand,
  gcCommand,
  forgetCommand,
];

function isGroup(entry: CommandSpec | CommandGroup): entry is CommandGroup {
  return "subcommands" in entry;
}

function version(): string {
  try {
    const pkg = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as {
      version?: string;
    };
    return pkg.version ?? "unknown";
  } catch {
    return "unknown";
  }
}

function mainHelp(): string {
  const w = Math.max(...COMMANDS.map((c) => c.name.length));
  const global = Object.entries(GLOBAL_OPTIONS).map(
    ([name, o]) =>
      `  ${`${"short" in o ? `-${o.short}, ` : ""}--${name}${"value" in o ? ` ${o.value}` : ""}`.padEnd(18)}  ${o.description}`,
  );
  return [
    "Usage: redactor <command> [arguments] [options]",
    "",
    "Look at and poke at redactor apps, inboxes and messages in Redis, and run actors.",
    "",
    "Commands:",
    ...COMMANDS.map((c) => `  ${c.name.padEnd(w)}  ${c.summary}`),
    "",
    "Global options:",
    ...global,
    "  --version           print the version",
    "",
    "Exit codes: 0 done, 1 failed (the message says why), 2 bad command line.",
    'Run "redactor <command> --help" for a command\'s arguments and options.',
  ].join("\n");
}

/** Where the CLI writes; tests and embedders may capture it. */
export interface CliIO {
  out(text: string): void;
  err(text: string): void;
}

const processIO: CliIO = {
  out: (text) => process.stdout.write(`${text}\n`),
  err: (text) => process.stderr.write(`${text}\n`),
};

function closest(word: string, names: readonly string[]): string | undefined {
  return names.find((n) => n.startsWith(word.slice(0, 2))) ?? undefined;
}

function findCommand(argv: readonly string[]): {
  spec: CommandSpec | CommandGroup | undefined;
  rest: string[];
} {
  const { word, rest } = splitWord(argv, GLOBAL_OPTIONS);
  if (word === undefined) return { spec: undefined, rest };
  const entry = COMMANDS.find((c) => c.name === word);
  if (!entry) {
    const guess = closest(
      word,
      COMMANDS.map((c) => c.name),
    );
    throw new UsageError(
      `unknown command "${word}"${guess ? `; did you mean "${guess}"?` : ""} (see redactor --help)`,
    );
  }
  if (!isGroup(entry)) return { spec: entry, rest };
  const sub = splitWord(rest, GLOBAL_OPTIONS);
  if (sub.word === undefined) return { spec: entry, rest: sub.rest };
  const spec = entry.subcommands.find((s) => s.name === `${entry.name} ${sub.word}`);
  if (!spec) {
    const names = entry.subcommands.map((s) => s.name.slice(entry.name.length + 1));
    throw new UsageError(`unknown command "${entry.name} ${sub.word}"; use one of: ${names.join(", ")}`);
  }
  return { spec, rest: sub.rest };
}

function specByName(name: string | undefined): CommandSpec | undefined {
  for (const c of COMMANDS) {
    if (!isGroup(c) && c.name === name) return c;
    if (isGroup(c)) {
      const s = c.subcommands.find((x) => x.name === name);
      if (s) return s;
    }
  }
  return undefined;
}

/** Where the command connects; a bad `--redis` / `--cluster` is a usage error of that command. */
function targetOf(spec: CommandSpec, parsed: ParsedCommand): Target {
  try {
    return resolveTarget({ redis: stringOption(parsed, "redis"), cluster: stringOption(parsed, "cluster") });
  } catch (err) {
    if (err instanceof UsageError && err.command === undefined) throw new UsageError(err.message, spec.name);
    throw err;
  }
}

/** Runs the CLI with `argv` (without `node` and the script) and returns the exit code. */
export async function main(argv: readonly string[], io: CliIO = processIO): Promise<number> {
  let redis: RedisClient | undefined;
  let opening: Promise<RedisClient> | undefined;
  try {
    const { spec, rest } = findCommand(argv);
    if (!spec) {
      if (rest.includes("--version")) {
        io.out(version());
        return ExitCode.OK;
      }
      const help = rest.includes("--help") || rest.includes("-h");
      (help ? io.out : io.err)(mainHelp());
      return help ? ExitCode.OK : ExitCode.USAGE;
    }
    if (isGroup(spec)) {
      const help = rest.includes("--help") || rest.includes("-h");
      (help ? io.out : io.err)(groupHelp(spec));
      return help ? ExitCode.OK : ExitCode.USAGE;
    }
    const parsed = parseCommand(spec, rest);
    if (parsed.options.help) {
      io.out(commandHelp(spec));
      return ExitCode.OK;
    }
    const target = targetOf(spec, parsed);
    // A cluster needs every app's keys in one slot: the hash-tagged layout, as createSystem uses there.
    const keys = new Keyspace({ hashTag: target.kind === "cluster" || parsed.options["hash-tag"] === true });
    checkAppIds(spec, parsed, keys);
    const ctx: CommandContext = {
      ...parsed,
      json: parsed.options.json === true,
      target,
      keys,
      redis: () => {
        opening ??= connect(target).then((client) => {
          redis = client;
          return client;
        });
        return opening;
      },
      out: io.out,
      err: io.err,
    };
    return await spec.run(ctx);
  } catch (err) {
    if (err instanceof UsageError) {
      io.err(`redactor: ${err.message}`);
      const spec = specByName(err.command);
      if (spec) io.err(`usage: ${usageLine(spec)}  (see redactor ${spec.name} --help)`);
      return ExitCode.USAGE;
    }
    if (err instanceof RedactorError) {
      io.err(`redactor: ${err.message}`);
      return ExitCode.FAILURE;
    }
    // A Redis error or a bug: say what happened; the stack only helps when debugging.
    const e = err as Error;
    io.err(`redactor: ${e.message ?? String(err)}`);
    if (process.env.REDACTOR_DEBUG) io.err(e.stack ?? "");
    return ExitCode.FAILURE;
  } finally {
    await closeRedis(redis);
  }
}

function isEntryPoint(): boolean {
  const script = process.argv[1];
  if (!script) return false;
  try {
    return realpathSync(script) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

/**
 * The command as a process runs it: `main` with the process' arguments (without `node` and the
 * script), its exit code as the process' exit code. The package's bin (`bin/redactor.js`) calls
 * this; so does this file when it is the script node was started with (`node dist/cli/main.js`).
 */
export async function runCommandLine(argv: readonly string[] = process.argv.slice(2)): Promise<void> {
  const code = await main(argv);
  process.exitCode = code;
  // Every command closes what it opened; this only guards against a stray handle keeping a
  // finished command alive.
  setTimeout(() => process.exit(code), 2000).unref();
}

if (isEntryPoint()) await runCommandLine();
