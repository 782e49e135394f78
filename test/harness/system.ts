/** Systems for tests: silent or captured logs, shut down after each test. */
import { Writable } from "node:stream";
import { type Logger, pino } from "pino";
import { afterEach } from "vitest";
import { type ActorSystem, createSystem, type SystemOptions } from "../../src/index.js";
import { type TestRedis, uniqueId } from "./redis.js";

/** A pino logger whose lines are kept as parsed objects. */
export function captureLogger(): { logger: Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk, _enc, done) {
      for (const line of String(chunk).split("\n")) if (line) lines.push(JSON.parse(line));
      done();
    },
  });
  return { logger: pino({ level: "debug" }, stream), lines };
}

/** Returns a factory of systems on the suite's server; each is shut down after its test. */
export function useSystems(redis: () => TestRedis) {
  const created: ActorSystem[] = [];
  afterEach(async () => {
    await Promise.all(created.splice(0).map((s) => s.shutdown()));
  });
  return async (options: Partial<SystemOptions> = {}): Promise<ActorSystem> => {
    const system = await createSystem({
      appId: uniqueId("sys"),
      redis: redis().url,
      logger: pino({ level: "silent" }),
      ...options,
    });
    created.push(system);
    return system;
  };
}

/** Resolves when `check` returns true, polling; rejects after `timeoutMs`. */
export async function waitFor(check: () => boolean | Promise<boolean>, timeoutMs = 5000, what = "condition") {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}
