/** Shared by the commands that send or run: the `<json>` argument, throw-away app ids, the logger. */
import { readFileSync } from "node:fs";
import { hostname } from "node:os";
import { type Logger, pino } from "pino";
import type { RedisClient } from "../cluster.js";
import type { Keyspace } from "../keyspace.js";
import { UsageError } from "./errors.js";

/**
 * Parses the payload argument: JSON text, `-` for stdin, or `@path` for a file. The wire protocol
 * carries a JSON object, so anything else is a usage error.
 */
export function readPayload(text: string, command: string): Record<string, unknown> {
  let source = text;
  let from = "the <json> argument";
  try {
    if (text === "-") {
      source = readFileSync(0, "utf8");
      from = "stdin";
    } else if (text.startsWith("@")) {
      source = readFileSync(text.slice(1), "utf8");
      from = text.slice(1);
    }
  } catch (err) {
    throw new UsageError(
      `cannot read the payload from ${text === "-" ? "stdin" : text.slice(1)}: ${(err as Error).message}`,
      command,
    );
  }
  let value: unknown;
  try {
    value = JSON.parse(source);
  } catch (err) {
    throw new UsageError(
      `${from} is not valid JSON (${(err as Error).message}); quote it for the shell, e.g. '{"altitude": 20}'`,
      command,
    );
  }
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw new UsageError(`${from} must be a JSON object (the wire payload is an object), e.g. '{}'`, command);
  }
  return value as Record<string, unknown>;
}

/** Reads `a.b.c` out of a payload. */
export function fieldAt(value: unknown, path: string): unknown {
  let current = value;
  for (const part of path.split(".")) {
    if (current === null || typeof current !== "object") return undefined;
    current = (current as Record<string, unknown>)[part];
  }
  return current;
}

/** A throw-away app id for a CLI process that needs its own inbox (ask, run). */
export function ephemeralAppId(kind: string): string {
  return `redactor-${kind}-${hostname()}-${process.pid}`;
}

/**
 * Removes the keys of a throw-away app id once its system is shut down, so that `redactor ls`
 * does not fill up with one offline app per CLI invocation.
 */
export async function forgetApp(redis: RedisClient, keys: Keyspace, app: string): Promise<void> {
  // One DEL: in the cluster layout an app's keys share one slot. A late reply creates the inbox
  // again; `redactor gc` removes it (src/hygiene.ts).
  await redis.del(...keys.appKeys(app).map((k) => k.key));
}

/** The logger of systems the CLI starts: warnings and errors to stderr, so stdout stays clean. */
export function cliLogger(level = process.env.REDACTOR_LOG_LEVEL ?? "warn"): Logger {
  return pino({ name: "redactor", level }, pino.destination({ dest: 2, sync: true }));
}
