/**
 * Throw-away redis-server processes, with no test-runner dependency, so that benchmarks and
 * scripts can start one too: each on a free loopback port, with no persistence unless asked, in
 * its own temporary directory. `redis.ts` adds the vitest lifecycle on top.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Redis } from "ioredis";

/** How to start a test server. */
export interface TestRedisOptions {
  /** Keep an append-only file, so a restart keeps the data. @default false */
  appendOnly?: boolean;
  /** Extra `redis-server` arguments, e.g. `["--notify-keyspace-events", "Kz"]`. @default [] */
  args?: string[];
}

/** One throw-away redis-server. */
export interface TestRedis {
  readonly host: string;
  readonly port: number;
  readonly url: string;
  readonly dir: string;
  /** A new client connection; closed by `stop()`. */
  client(): Redis;
  /** Kills the server (SIGKILL by default) and waits for it to exit. */
  kill(signal?: NodeJS.Signals): Promise<void>;
  /**
   * Starts the server again on the same port and directory (after `kill`, or kills it first),
   * staying down `downMs` in between.
   */
  restart(downMs?: number): Promise<void>;
  /** Stops the server, closes clients, removes its directory. */
  stop(): Promise<void>;
}

let checkedBinary = false;

function requireRedisServer(): void {
  if (checkedBinary) return;
  try {
    execFileSync("redis-server", ["--version"], { stdio: "ignore" });
  } catch {
    throw new Error(
      "redis-server is not installed or not on PATH; the tests start their own servers. " +
        "Install it with: sudo apt-get install -y redis-server",
    );
  }
  checkedBinary = true;
}

/** A free TCP port on 127.0.0.1. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const address = srv.address();
      srv.close(() => (typeof address === "object" && address ? resolve(address.port) : reject()));
    });
  });
}

/** Resolves once the redis-server `child` on `port` answers PING (10 s at most); throws with its log. */
export async function waitForPing(port: number, child: ChildProcess, log: () => string): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`redis-server exited (${child.exitCode}): ${log()}`);
    const probe = new Redis({ port, host: "127.0.0.1", lazyConnect: true, retryStrategy: () => null });
    probe.on("error", () => {});
    try {
      await probe.connect();
      if ((await probe.ping()) === "PONG") {
        probe.disconnect();
        return;
      }
    } catch {
      // not up yet
    }
    probe.disconnect();
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`redis-server on port ${port} did not answer within 10 s: ${log()}`);
}

/** Starts a throw-away redis-server. */
export async function startRedis(options: TestRedisOptions = {}): Promise<TestRedis> {
  requireRedisServer();
  const host = "127.0.0.1";
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), "redactor-redis-"));
  const args = [
    "--port",
    String(port),
    "--bind",
    host,
    "--dir",
    dir,
    "--save",
    "",
    "--appendonly",
    options.appendOnly ? "yes" : "no",
    ...(options.appendOnly ? ["--appendfsync", "always"] : []),
    ...(options.args ?? []),
  ];
  const clients: Redis[] = [];
  let child: ChildProcess;
  let output = "";

  const launch = async () => {
    output = "";
    child = spawn("redis-server", args, { stdio: ["ignore", "pipe", "pipe"] });
    child.stdout?.on("data", (d) => {
      output = (output + d).slice(-4000);
    });
    child.stderr?.on("data", (d) => {
      output = (output + d).slice(-4000);
    });
    await waitForPing(port, child, () => output);
  };

  const kill = async (signal: NodeJS.Signals = "SIGKILL") => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((r) => child.once("exit", r));
    child.kill(signal);
    await exited;
  };

  await launch();
  return {
    host,
    port,
    url: `redis://${host}:${port}`,
    dir,
    client() {
      const c = new Redis({ host, port, maxRetriesPerRequest: null });
      c.on("error", () => {});
      clients.push(c);
      return c;
    },
    kill,
    async restart(downMs = 0) {
      await kill();
      await new Promise((r) => setTimeout(r, downMs));
      await launch();
    },
    async stop() {
      for (const c of clients) c.disconnect();
      await kill("SIGTERM");
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

let counter = 0;

/** An app id no other test uses. */
export function uniqueId(label: string): string {
  counter += 1;
  return `${label}-${process.pid}-${counter}-${Math.random().toString(36).slice(2, 8)}`;
}
