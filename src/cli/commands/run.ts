/**
 * `redactor run <module>`: imports a module, spawns the actors and supervisors it exports under
 * one supervisor, and serves them until SIGINT or SIGTERM, then shuts the system down cleanly
 * (handlers in flight finish, unclaimed work goes back to the inboxes, actors go offline).
 */
import { existsSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { basename, dirname, extname, join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { type ActorDefinition, isFamilyDefinition } from "../../actor.js";
import { RedactorError } from "../../errors.js";
import type { MetricsServer } from "../../metrics.js";
import { type ChildSpec, isSupervisorSpec, type SupervisorSpec, supervisor } from "../../supervisor.js";
import { arg, type CommandSpec, listOption, stringOption } from "../command.js";
import { startCliSystem } from "../connect.js";
import { CommandFailedError, ExitCode, UsageError } from "../errors.js";
import { cliLogger, ephemeralAppId, forgetApp } from "../payload.js";

function isActorDefinition(value: unknown): value is ActorDefinition {
  if (value === null || typeof value !== "object") return false;
  const v = value as Record<string, unknown>;
  return (
    typeof v.id === "string" &&
    v.kind !== "supervisor" &&
    typeof v.handlers === "object" &&
    v.handlers !== null
  );
}

function isSupervisor(value: unknown): value is SupervisorSpec {
  return (
    value !== null &&
    typeof value === "object" &&
    (value as { kind?: unknown }).kind === "supervisor" &&
    Array.isArray((value as { children?: unknown }).children)
  );
}

/** The actors and supervisors in one export: a spec, or an array of specs. */
function specsIn(value: unknown): ChildSpec[] {
  if (isActorDefinition(value) || isSupervisor(value)) return [value];
  if (
    Array.isArray(value) &&
    value.length > 0 &&
    value.every((v) => isActorDefinition(v) || isSupervisor(v))
  ) {
    return value as ChildSpec[];
  }
  return [];
}

/** The ids of the actors a spec starts (an actor family has no single id: none). */
function actorIdsUnder(spec: ChildSpec): string[] {
  if (isSupervisorSpec(spec)) return spec.children.flatMap(actorIdsUnder);
  return isFamilyDefinition(spec) ? [] : [spec.id];
}

/**
 * What to spawn from a module: the exports named by `--export`; else the default export when it
 * is a spec; else every named export that is one, leaving out actors that an exported supervisor
 * already starts (modules often export both a tree and its leaves).
 */
export function specsFromModule(namespace: Record<string, unknown>, names: readonly string[]): ChildSpec[] {
  if (names.length > 0) {
    return names.flatMap((name) => {
      if (!(name in namespace)) {
        const available = Object.keys(namespace).join(", ") || "none";
        throw new UsageError(`the module has no export "${name}" (it exports: ${available})`, "run");
      }
      const specs = specsIn(namespace[name]);
      if (specs.length === 0) {
        throw new UsageError(`export "${name}" is not an actor definition or supervisor spec`, "run");
      }
      return specs;
    });
  }
  const fromDefault = specsIn(namespace.default);
  if (fromDefault.length > 0) return fromDefault;
  const named = Object.entries(namespace)
    .filter(([name]) => name !== "default")
    .flatMap(([, value]) => specsIn(value));
  const supervised = new Set(named.filter(isSupervisorSpec).flatMap(actorIdsUnder));
  const unique = new Map<ChildSpec, true>();
  for (const spec of named) {
    if (isSupervisorSpec(spec) || isFamilyDefinition(spec) || !supervised.has(spec.id))
      unique.set(spec, true);
  }
  return [...unique.keys()];
}

/** tsx's two loader APIs: `esm` for ES modules, `cjs` for CommonJS (a .ts file in a "type": "commonjs" package, .cts). */
type TsxApi = "esm" | "cjs";

/**
 * The file that `import("tsx/<api>/api")` would load from the project in the current directory,
 * or undefined when it has no tsx. Read from tsx's own `exports` map: `require.resolve` picks the
 * `require` condition, and tsx's CommonJS flavour of its ESM API does not work when imported.
 */
function projectTsx(api: TsxApi): string | undefined {
  try {
    const manifest = createRequire(join(process.cwd(), "noop.js")).resolve("tsx/package.json");
    const { exports } = JSON.parse(readFileSync(manifest, "utf8")) as {
      exports?: Record<string, { import?: string | { default?: string } }>;
    };
    const entry = exports?.[`./${api}/api`]?.import;
    const file = typeof entry === "string" ? entry : entry?.default;
    return file === undefined ? undefined : join(dirname(manifest), file);
  } catch {
    return undefined;
  }
}

/**
 * Makes `import()` of .ts files work through tsx, when it can be found: the project's own tsx
 * first, then the one next to redactor. Both of tsx's loaders are registered, because a .ts file
 * in a CommonJS project (what `npm init` writes) is a CommonJS module.
 */
async function enableTypeScript(path: string): Promise<void> {
  for (const api of ["esm", "cjs"] as const) {
    const attempts: (() => Promise<unknown>)[] = [
      async () => {
        const file = projectTsx(api);
        if (file === undefined) throw new Error("no tsx in the project");
        return import(pathToFileURL(file).href);
      },
      async () => {
        const specifier = `tsx/${api}/api`;
        return import(specifier);
      },
    ];
    let registered = false;
    for (const attempt of attempts) {
      try {
        const loaded = (await attempt()) as {
          register?: () => unknown;
          default?: { register?: () => unknown };
        };
        const register = loaded.register ?? loaded.default?.register;
        if (register) {
          register();
          registered = true;
          break;
        }
      } catch {
        // Not installed there; try the next place.
      }
    }
    if (!registered) {
      throw new CommandFailedError(
        `${path} is TypeScript and tsx was not found to load it; install it (npm i -D tsx), ` +
          `or run "node --import tsx $(which redactor) run ${path}", or build the module to JavaScript first`,
      );
    }
  }
}

/**
 * A module's exports. A CommonJS module compiled from TypeScript or by Babel (`__esModule`) has
 * its exports in `module.exports`, which import() gives as the default export; its own default
 * export is then `module.exports.default`.
 */
function exportsOf(namespace: Record<string, unknown>): Record<string, unknown> {
  const cjs = namespace.default as { __esModule?: unknown } | null | undefined;
  return cjs !== null && typeof cjs === "object" && cjs.__esModule === true
    ? (cjs as Record<string, unknown>)
    : namespace;
}

async function importModule(path: string): Promise<Record<string, unknown>> {
  const file = resolve(process.cwd(), path);
  if (!existsSync(file))
    throw new CommandFailedError(`no such module: ${file}; give a path to a .js, .mjs or .ts file`);
  if ([".ts", ".mts", ".cts", ".tsx"].includes(extname(file))) await enableTypeScript(path);
  try {
    return exportsOf((await import(pathToFileURL(file).href)) as Record<string, unknown>);
  } catch (err) {
    throw new CommandFailedError(`cannot import ${path}: ${(err as Error).message}`);
  }
}

/** The `run` command. */
export const runCommand: CommandSpec = {
  name: "run",
  summary: "Run the actors and supervisors a module exports, until Ctrl-C (SIGINT) or SIGTERM.",
  description:
    "Imports the module (.js/.mjs; .ts through tsx when it is installed) and spawns its default " +
    "export, or else every named export that is an actor definition (defineActor) or a supervisor " +
    "spec (supervisor), or arrays of them, under one supervisor named after the module. On SIGINT " +
    "or SIGTERM the system shuts down: handlers in flight finish, claimed but unstarted messages " +
    "go back to their inboxes, the actors are marked offline. A second signal exits at once.",
  args: [{ name: "module", description: "path of the module, e.g. ./actors.mjs" }],
  options: {
    export: {
      type: "string",
      multiple: true,
      value: "<name>",
      description: "spawn only this export",
    },
    "app-id": {
      type: "string",
      value: "<id>",
      description: "the system's own app id (default redactor-run-<host>-<pid>, removed on exit)",
    },
    "metrics-port": {
      type: "string",
      value: "<port>",
      description: "serve Prometheus metrics at http://<host>:<port>/metrics (0 = any free port)",
    },
    "metrics-host": {
      type: "string",
      value: "<host>",
      description: "interface for --metrics-port (default 127.0.0.1; 0.0.0.0 for remote scrapers)",
    },
  },
  examples: [
    "redactor run ./dist/flight.js --metrics-port 9464",
    "redactor run ./actors.ts --export echo --export logger",
  ],
  async run(ctx) {
    const path = arg(ctx, "module");
    const portText = stringOption(ctx, "metrics-port");
    const port = portText === undefined ? undefined : Number(portText);
    if (port !== undefined && (!Number.isInteger(port) || port < 0 || port > 65_535)) {
      throw new UsageError(`--metrics-port must be a port number 0-65535, got "${portText}"`, "run");
    }
    const host = stringOption(ctx, "metrics-host") ?? "127.0.0.1";
    const namespace = await importModule(path);
    const specs = specsFromModule(namespace, listOption(ctx, "export"));
    if (specs.length === 0) {
      throw new CommandFailedError(
        `${path} exports no actor definition or supervisor spec; export one, e.g. ` +
          '`export default defineActor({ id: "echo", handlers: { … } })`',
      );
    }
    const only = specs.length === 1 ? specs[0] : undefined;
    const root =
      only && isSupervisorSpec(only)
        ? only
        : supervisor({ id: basename(path, extname(path)), strategy: "one_for_one", children: specs });
    const chosenId = stringOption(ctx, "app-id");
    const appId = chosenId ?? ephemeralAppId("run");

    // Loaded here rather than at the top: the other commands start faster without it.
    const { createMetrics, serveMetrics } = await import("../../metrics.js");
    // Logs go to stderr like every other CLI note, so stdout carries only --json events.
    const system = await startCliSystem(
      ctx.target,
      ctx.keys,
      appId,
      cliLogger(process.env.REDACTOR_LOG_LEVEL ?? "info"),
    );
    let server: MetricsServer | undefined;
    let signals = 0;
    let stop!: () => void;
    const stopped = new Promise<void>((r) => {
      stop = r;
    });
    const onSignal = (signal: NodeJS.Signals) => {
      signals += 1;
      if (signals > 1) {
        ctx.err(`redactor run: second ${signal}; exiting without waiting for handlers`);
        process.exit(130);
      }
      ctx.err(`redactor run: ${signal}; shutting down (again to force)`);
      stop();
    };
    process.on("SIGINT", onSignal);
    process.on("SIGTERM", onSignal);
    try {
      // Metrics first, so that the actors' start events are counted.
      if (port !== undefined) server = await serveMetrics(createMetrics(system), { port, host });
      const ref = await system.spawn(root);
      if (ctx.json) {
        ctx.out(
          JSON.stringify({
            event: "ready",
            appId,
            supervisor: ref.id,
            actors: ref.actorIds,
            metrics: server?.url ?? null,
          }),
        );
      }
      ctx.err(
        `redactor run: ${ref.actorIds.join(", ")} running under "${ref.id}" as ${appId}` +
          `${server ? `; metrics at ${server.url}` : ""}; Ctrl-C to stop`,
      );
      let failure: string | undefined;
      system.events.on("system.failed", (e) => {
        failure = e.error;
      });
      await Promise.race([stopped, system.stopped]);
      if (failure !== undefined) {
        throw new CommandFailedError(
          `the root supervisor gave up (${failure}); the system stopped. Its log above says which actor kept failing`,
        );
      }
      return ExitCode.OK;
    } catch (err) {
      if (err instanceof RedactorError && !(err instanceof CommandFailedError))
        throw new CommandFailedError(err.message);
      throw err;
    } finally {
      await server?.close();
      await system.shutdown();
      if (chosenId === undefined) {
        // The system's connection is closed by now: forget the throw-away id on a fresh one.
        const redis = await ctx.redis().catch(() => undefined);
        if (redis) await forgetApp(redis, ctx.keys, appId).catch(() => {});
      }
      process.off("SIGINT", onSignal);
      process.off("SIGTERM", onSignal);
      if (ctx.json) ctx.out(JSON.stringify({ event: "stopped" }));
      else ctx.err("redactor run: stopped");
    }
  },
};
