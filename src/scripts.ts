/**
 * Loads the Lua commands in `src/lua/` once per connection and calls them by SHA. A server
 * that forgot its scripts (restart, SCRIPT FLUSH, failover) answers NOSCRIPT, which means the
 * script did not run; the call is then made with EVAL and the script's source, which runs it
 * whatever the cache holds (and caches it again), so a flush at any moment never fails a call
 * and never runs a script twice.
 */
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { masters, type RedisClient } from "./cluster.js";

/** The Lua commands, one `.lua` file each. */
export type ScriptName =
  | "send"
  | "claim"
  | "finish"
  | "extend"
  | "recover"
  | "peek"
  | "heartbeat"
  | "announce"
  | "leave"
  | "activate"
  | "timer-start"
  | "timer-cancel"
  | "timer-fire"
  | "schedule"
  | "promote"
  | "cancel"
  | "due"
  | "reindex"
  | "state-check"
  | "retry-dead";

const SCRIPT_NAMES: readonly ScriptName[] = [
  "send",
  "claim",
  "finish",
  "extend",
  "recover",
  "peek",
  "heartbeat",
  "announce",
  "leave",
  "activate",
  "timer-start",
  "timer-cancel",
  "timer-fire",
  "schedule",
  "promote",
  "cancel",
  "due",
  "reindex",
  "state-check",
  "retry-dead",
];

function readLua(name: string): string {
  return readFileSync(new URL(`./lua/${name}.lua`, import.meta.url), "utf8");
}

/** A script's source with its `-- @include name` lines replaced by `lua/includes/name.lua`. */
export function scriptSource(name: ScriptName): string {
  return readLua(name).replace(/^-- @include (\w+)$/gm, (_, include: string) =>
    readLua(`includes/${include}`),
  );
}

interface LoadedScript {
  source: string;
  sha: string;
}

const loaded = new Map<ScriptName, LoadedScript>();

function script(name: ScriptName): LoadedScript {
  let entry = loaded.get(name);
  if (!entry) {
    const source = scriptSource(name);
    entry = { source, sha: createHash("sha1").update(source).digest("hex") };
    loaded.set(name, entry);
  }
  return entry;
}

/**
 * Calls the Lua commands on one connection, or on a cluster client (which sends each call to
 * the master of its keys' slot).
 */
export class Scripts {
  constructor(private readonly redis: RedisClient) {}

  /**
   * Loads every script into the cache of the server, or of every master of a cluster (once at
   * start; `run` reloads on NOSCRIPT, e.g. on a replica promoted later).
   */
  async load(): Promise<void> {
    await Promise.all(
      masters(this.redis).flatMap((node) =>
        SCRIPT_NAMES.map((name) => node.script("LOAD", script(name).source)),
      ),
    );
  }

  /** Runs one script by SHA; replies come back as strings (bulk strings decoded as UTF-8). */
  run(
    name: ScriptName,
    keys: readonly (string | Buffer)[],
    args: readonly (string | number | Buffer)[],
  ): Promise<unknown> {
    return this.call("call", name, keys, args);
  }

  /**
   * Runs one script by SHA; bulk-string replies come back as Buffers, byte for byte (members
   * are opaque bytes: decoding them as UTF-8 would alter any that are not valid UTF-8).
   */
  runBuffer(
    name: ScriptName,
    keys: readonly (string | Buffer)[],
    args: readonly (string | number | Buffer)[],
  ): Promise<unknown> {
    return this.call("callBuffer", name, keys, args);
  }

  private async call(
    how: "call" | "callBuffer",
    name: ScriptName,
    keys: readonly (string | Buffer)[],
    args: readonly (string | number | Buffer)[],
  ): Promise<unknown> {
    const { sha, source } = script(name);
    try {
      return await this.redis[how]("EVALSHA", sha, keys.length, ...keys, ...args);
    } catch (err) {
      if (!isNoScript(err)) throw err;
      return await this.redis[how]("EVAL", source, keys.length, ...keys, ...args);
    }
  }
}

function isNoScript(err: unknown): boolean {
  // A cluster client may wrap it: "Too many Cluster redirections. Last error: NOSCRIPT …".
  return err instanceof Error && /(^|Last error: )NOSCRIPT/.test(err.message);
}
