/** Reads of the server's own counters: INFO commandstats and INFO memory. */
import type { Redis } from "ioredis";

/** Calls and CPU time per command, from INFO commandstats. */
export type CommandStats = Map<string, { calls: number; usec: number }>;

/** Parses INFO commandstats (`cmdstat_get:calls=1,usec=2,…`). */
export async function commandStats(redis: Redis): Promise<CommandStats> {
  const text = await redis.info("commandstats");
  const stats: CommandStats = new Map();
  for (const line of text.split("\n")) {
    const m = /^cmdstat_([^:]+):calls=(\d+),usec=(\d+)/.exec(line.trim());
    if (m) stats.set(m[1] as string, { calls: Number(m[2]), usec: Number(m[3]) });
  }
  return stats;
}

/**
 * Commands and server CPU µs between two snapshots, leaving out `ignore` (the INFO calls the
 * benchmark itself makes to read the counters).
 */
export function statsDelta(
  before: CommandStats,
  after: CommandStats,
  ignore: readonly string[] = ["info"],
): { calls: number; usec: number; byCommand: Record<string, number> } {
  let calls = 0;
  let usec = 0;
  const byCommand: Record<string, number> = {};
  for (const [name, now] of after) {
    if (ignore.includes(name)) continue;
    const was = before.get(name) ?? { calls: 0, usec: 0 };
    const d = now.calls - was.calls;
    if (d === 0) continue;
    calls += d;
    usec += now.usec - was.usec;
    byCommand[name] = d;
  }
  return { calls, usec, byCommand };
}

/** `used_memory` in bytes: what the server's allocator holds for data, not its RSS. */
export async function usedMemory(redis: Redis): Promise<number> {
  const text = await redis.info("memory");
  const m = /used_memory:(\d+)/.exec(text);
  if (!m) throw new Error("INFO memory has no used_memory");
  return Number(m[1]);
}

/** The server's version, for the results file. */
export async function serverVersion(redis: Redis): Promise<string> {
  const text = await redis.info("server");
  return /redis_version:(\S+)/.exec(text)?.[1] ?? "unknown";
}
