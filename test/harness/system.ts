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

/** Resolves with the first non-null value `get` returns, polling; rejects after `timeoutMs`. */
export async function waitForValue<T>(
  get: () => Promise<T | null>,
  timeoutMs = 5000,
  what = "a value",
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const value = await get();
    if (value !== null) return value;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}

/** A test fixture running in its own OS process (tsx), with its output kept. */
export interface ChildWorker {
  readonly child: import("node:child_process").ChildProcess;
  output(): string;
  /** Sends `signal` and waits for the process to exit. */
  kill(signal?: NodeJS.Signals): Promise<void>;
}

/** Starts `test/fixtures/<name>.ts` in a new process and waits until it prints "ready". */
export async function startWorker(
  name: string,
  env: Record<string, string>,
  timeoutMs = 20_000,
): Promise<ChildWorker> {
  const { spawn } = await import("node:child_process");
  const { fileURLToPath } = await import("node:url");
  const script = fileURLToPath(new URL(`../fixtures/${name}.ts`, import.meta.url));
  // `node --import tsx`, not the tsx binary: one process, so a signal reaches the worker itself.
  const child = spawn(process.execPath, ["--import", "tsx", script], {
    env: { ...process.env, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  child.stdout?.on("data", (d) => {
    out += d;
  });
  child.stderr?.on("data", (d) => {
    out += d;
  });
  const worker: ChildWorker = {
    child,
    output: () => out,
    async kill(signal: NodeJS.Signals = "SIGKILL") {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise((r) => child.once("exit", r));
      child.kill(signal);
      await exited;
    },
  };
  await waitFor(() => out.includes("ready") || child.exitCode !== null, timeoutMs, `${name} to start`);
  if (!out.includes("ready")) throw new Error(`${name} exited early: ${out}`);
  return worker;
}

/**
 * Runs a TypeScript script (`node --import tsx`, plus any `imports` loaded first) to its end;
 * resolves with its exit code, its output and how long it ran. Killed after `timeoutMs`.
 */
export async function runScript(
  script: string,
  options: { args?: string[]; env?: Record<string, string>; imports?: string[]; timeoutMs?: number } = {},
): Promise<{ code: number | null; out: string; ms: number }> {
  const { spawn } = await import("node:child_process");
  const started = Date.now();
  const imports = ["tsx", ...(options.imports ?? [])].flatMap((i) => ["--import", i]);
  const child = spawn(process.execPath, [...imports, script, ...(options.args ?? [])], {
    env: { ...process.env, ...options.env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  child.stdout?.on("data", (d) => {
    out += d;
  });
  child.stderr?.on("data", (d) => {
    out += d;
  });
  const killer = setTimeout(() => child.kill("SIGKILL"), options.timeoutMs ?? 30_000);
  return new Promise((resolve) =>
    child.on("exit", (code) => {
      clearTimeout(killer);
      resolve({ code, out, ms: Date.now() - started });
    }),
  );
}

/** What a process run to completion printed, and its exit code. */
export interface ProcessResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `node <argv…>` to completion with `env` (the whole environment), `input` on its stdin. */
export async function runProcess(
  argv: readonly string[],
  env: NodeJS.ProcessEnv,
  input = "",
): Promise<ProcessResult> {
  const { spawn } = await import("node:child_process");
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...argv], { env });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => {
      stdout += d;
    });
    child.stderr.on("data", (d) => {
      stderr += d;
    });
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(input);
  });
}
