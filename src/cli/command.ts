/**
 * How a command is described, parsed and helped. Every command declares its positional
 * arguments and options once; `util.parseArgs` parses them and `--help` is generated from the
 * same declaration, so the help can never drift from what is accepted.
 */
import { parseArgs } from "node:util";
import type { RedisClient } from "../cluster.js";
import type { Keyspace } from "../keyspace.js";
import type { Target } from "./connect.js";
import { UsageError } from "./errors.js";

/** One option of a command. */
export interface OptionSpec {
  type: "string" | "boolean";
  /** One-letter alias. */
  short?: string;
  /** May be given several times. */
  multiple?: boolean;
  /** One line for `--help`. */
  description: string;
  /**
   * Placeholder of the value in `--help`, e.g. `<url>`. `<n>`, `<duration>`, `<port>` and `<p>`
   * (a priority) also mark the option as numeric: a negative number given to it (`--limit -1`)
   * is refused with what the value must be.
   */
  value?: string;
}

/** One positional argument of a command. */
export interface ArgSpec {
  name: string;
  description: string;
  /** May be left out. */
  optional?: boolean;
  /** Takes every remaining positional (only the last argument). */
  variadic?: boolean;
}

/** The options every command accepts. */
export const GLOBAL_OPTIONS = {
  redis: {
    type: "string",
    value: "<url>",
    description: "Redis URL (redis://, rediss:// for TLS); default $REDIS_URL, else redis://127.0.0.1:6379",
  },
  cluster: {
    type: "string",
    value: "<url,…>",
    description:
      "a Redis Cluster: some of its nodes, comma-separated (redis://host:7000,…); default $REDIS_CLUSTER " +
      "unless --redis is given; implies --hash-tag",
  },
  json: { type: "boolean", description: "print JSON for scripts instead of tables" },
  "hash-tag": {
    type: "boolean",
    description:
      "keys use the {app} cluster layout (only if every program was started that way; always on with --cluster)",
  },
  help: { type: "boolean", short: "h", description: "show this help" },
} as const satisfies Record<string, OptionSpec>;

/** What a command's `run` receives. */
export interface CommandContext {
  /** Positional arguments by name; a variadic one is an array. */
  args: Record<string, string | string[] | undefined>;
  /** Parsed option values by name. */
  options: Record<string, string | boolean | string[] | undefined>;
  /** `--json` was given. */
  json: boolean;
  /** Where to connect: one server (`--redis`) or a Redis Cluster (`--cluster`). */
  target: Target;
  /** The key layout. */
  keys: Keyspace;
  /**
   * A connection to the server or the cluster, opened on first use and closed when the command
   * ends. On a cluster a multi-key command or a pipeline must keep to one slot (src/cluster.ts).
   */
  redis(): Promise<RedisClient>;
  /** Writes one line (or block) to stdout. */
  out(text: string): void;
  /** Writes one line to stderr: notes, warnings, progress. */
  err(text: string): void;
}

/** A command (or subcommand) of `redactor`. */
export interface CommandSpec {
  /** As typed: `inspect`, or `dlq retry` for a subcommand. */
  name: string;
  /** One line for the command list. */
  summary: string;
  /** A paragraph for its `--help`. */
  description?: string;
  args: readonly ArgSpec[];
  options: Record<string, OptionSpec>;
  examples?: readonly string[];
  /** Runs the command and returns its exit code. */
  run(ctx: CommandContext): Promise<number>;
}

/** A command that only groups subcommands, such as `dlq`. */
export interface CommandGroup {
  name: string;
  summary: string;
  description?: string;
  subcommands: readonly CommandSpec[];
}

type ParseConfig = Record<string, { type: "string" | "boolean"; short?: string; multiple?: boolean }>;

function toParseConfig(options: Record<string, OptionSpec>): ParseConfig {
  const config: ParseConfig = {};
  for (const [name, spec] of Object.entries(options)) {
    config[name] = { type: spec.type };
    if (spec.short) (config[name] as { short?: string }).short = spec.short;
    if (spec.multiple) (config[name] as { multiple?: boolean }).multiple = true;
  }
  return config;
}

/**
 * Splits off the first positional word (a command or subcommand name) without knowing yet which
 * options follow it, so that global options may come before or after the command.
 */
export function splitWord(
  argv: readonly string[],
  options: Record<string, OptionSpec>,
): { word: string | undefined; rest: string[] } {
  const { tokens } = parseArgs({
    args: [...argv],
    options: toParseConfig(options),
    strict: false,
    allowPositionals: true,
    tokens: true,
  });
  const first = tokens.find((t) => t.kind === "positional");
  if (!first) return { word: undefined, rest: [...argv] };
  return { word: first.value, rest: [...argv.slice(0, first.index), ...argv.slice(first.index + 1)] };
}

/**
 * What a numeric option's value must be, by its `--help` placeholder: the options that take a
 * count, a duration, a port or a priority.
 */
const NUMERIC_VALUES: Record<string, string> = {
  "<n>": "a positive whole number (1 or more)",
  "<duration>": "a positive duration like 500ms, 5s, 2m or 1h",
  "<port>": "a port number 0-65535",
  "<p>": "low, normal, high, critical or a positive 1-4",
};

/**
 * The usage message for a negative number given to a numeric option (`--limit -1`), which
 * `util.parseArgs` refuses as "argument is ambiguous" (it reads `-1` as an option); undefined
 * for any other parse error, or for an option that takes text (its value may start with "-",
 * written `--id=-x`, as parseArgs says).
 */
function negativeValue(
  err: unknown,
  argv: readonly string[],
  options: Record<string, OptionSpec>,
): string | undefined {
  if ((err as NodeJS.ErrnoException).code !== "ERR_PARSE_ARGS_INVALID_OPTION_VALUE") return undefined;
  const flag = /^Option '(-[^']+)' argument is ambiguous/.exec((err as Error).message)?.[1];
  if (flag === undefined) return undefined;
  const name = flag.startsWith("--")
    ? flag.slice(2)
    : Object.keys(options).find((n) => options[n]?.short === flag.slice(1));
  const what = name === undefined ? undefined : NUMERIC_VALUES[options[name]?.value ?? ""];
  const at = argv.findIndex((a, i) => a === flag && argv[i + 1]?.startsWith("-"));
  const value = at < 0 ? undefined : argv[at + 1];
  if (what === undefined || value === undefined || !/^-\.?\d/.test(value)) return undefined;
  return `--${name} must be ${what}, got "${value}"`;
}

/** The parsed command line of one command. */
export interface ParsedCommand {
  args: Record<string, string | string[] | undefined>;
  options: Record<string, string | boolean | string[] | undefined>;
}

/** Parses `argv` for `spec`; throws UsageError with the reason and the usage line. */
export function parseCommand(spec: CommandSpec, argv: readonly string[]): ParsedCommand {
  const options = { ...spec.options, ...GLOBAL_OPTIONS };
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({
      args: [...argv],
      options: toParseConfig(options),
      strict: true,
      allowPositionals: true,
    });
  } catch (err) {
    const negative = negativeValue(err, argv, options);
    if (negative) throw new UsageError(negative, spec.name);
    // parseArgs explains well ("Unknown option '--x'"); drop its advice about "--" which does
    // not apply to most of our commands.
    const reason = (err as Error).message.replace(/\.? ?To specify a positional argument.*$/s, "");
    throw new UsageError(reason, spec.name);
  }
  const values = parsed.values as Record<string, string | boolean | string[] | undefined>;
  if (values.help) return { args: {}, options: values };
  const positionals = [...parsed.positionals];
  const args: Record<string, string | string[] | undefined> = {};
  for (const arg of spec.args) {
    if (arg.variadic) {
      args[arg.name] = positionals.splice(0);
      if (!arg.optional && (args[arg.name] as string[]).length === 0) {
        throw new UsageError(`missing <${arg.name}>: ${arg.description}`, spec.name);
      }
      continue;
    }
    const value = positionals.shift();
    if (value === undefined && !arg.optional) {
      throw new UsageError(`missing <${arg.name}>: ${arg.description}`, spec.name);
    }
    args[arg.name] = value;
  }
  if (positionals.length > 0) {
    throw new UsageError(`unexpected argument "${positionals[0]}"`, spec.name);
  }
  return { args, options: values };
}

function argUsage(arg: ArgSpec): string {
  const name = `<${arg.name}>${arg.variadic ? "…" : ""}`;
  return arg.optional ? `[${name}]` : name;
}

/** `redactor inspect <app> [options]`. */
export function usageLine(spec: CommandSpec): string {
  return ["redactor", spec.name, ...spec.args.map(argUsage), "[options]"].join(" ");
}

function optionLines(options: Record<string, OptionSpec>): string[] {
  const rows = Object.entries(options).map(([name, spec]) => {
    const flag = `${spec.short ? `-${spec.short}, ` : ""}--${name}${spec.value ? ` ${spec.value}` : ""}`;
    return [flag, spec.description + (spec.multiple ? " (repeatable)" : "")] as const;
  });
  const w = Math.max(...rows.map(([flag]) => flag.length));
  return rows.map(([flag, text]) => `  ${flag.padEnd(w)}  ${text}`);
}

/** The full `--help` text of one command. */
export function commandHelp(spec: CommandSpec): string {
  const lines = [`Usage: ${usageLine(spec)}`, "", spec.summary];
  if (spec.description) lines.push("", spec.description);
  if (spec.args.length > 0) {
    lines.push("", "Arguments:");
    const w = Math.max(...spec.args.map((a) => argUsage(a).length));
    for (const arg of spec.args) lines.push(`  ${argUsage(arg).padEnd(w)}  ${arg.description}`);
  }
  if (Object.keys(spec.options).length > 0) lines.push("", "Options:", ...optionLines(spec.options));
  lines.push("", "Global options:", ...optionLines(GLOBAL_OPTIONS));
  if (spec.examples?.length) lines.push("", "Examples:", ...spec.examples.map((e) => `  ${e}`));
  return lines.join("\n");
}

/** The `--help` text of a command group. */
export function groupHelp(group: CommandGroup): string {
  const w = Math.max(...group.subcommands.map((s) => s.name.length));
  return [
    `Usage: redactor ${group.name} <command> … [options]`,
    "",
    group.summary,
    ...(group.description ? ["", group.description] : []),
    "",
    "Commands:",
    ...group.subcommands.map((s) => `  ${s.name.padEnd(w)}  ${s.summary}`),
    "",
    `Run "redactor ${group.name} <command> --help" for the options of each.`,
  ].join("\n");
}

/** Positional arguments and options whose values are app ids. */
const APP_ID_ARGS = ["app"] as const;
const APP_ID_OPTIONS = ["app", "from", "app-id"] as const;

/**
 * Checks every app id on the command line (the `<app>` arguments, `--app`, `--from`,
 * `--app-id`) against the rules of the key layout in use, so that a bad id is a usage error
 * before anything is read or written.
 * @throws UsageError with the rule the id breaks and what an id may be.
 */
export function checkAppIds(spec: CommandSpec, parsed: ParsedCommand, keys: Keyspace): void {
  const named: [string, unknown][] = [
    ...APP_ID_ARGS.map((name) => [`<${name}>`, parsed.args[name]] as [string, unknown]),
    ...APP_ID_OPTIONS.map((name) => [`--${name}`, parsed.options[name]] as [string, unknown]),
  ];
  for (const [label, value] of named) {
    if (value === undefined) continue;
    for (const id of Array.isArray(value) ? value : [value]) {
      try {
        keys.checkApp(id, `app id in ${label}`);
      } catch (err) {
        throw new UsageError((err as Error).message, spec.name);
      }
    }
  }
}

/** Reads a string option. */
export function stringOption(ctx: Pick<CommandContext, "options">, name: string): string | undefined {
  const value = ctx.options[name];
  return typeof value === "string" ? value : undefined;
}

/** Reads a repeatable string option. */
export function listOption(ctx: Pick<CommandContext, "options">, name: string): string[] {
  const value = ctx.options[name];
  if (Array.isArray(value)) return value;
  return typeof value === "string" ? [value] : [];
}

/** Reads a positional argument that is a single string. */
export function arg(ctx: Pick<CommandContext, "args">, name: string): string {
  const value = ctx.args[name];
  return typeof value === "string" ? value : "";
}
