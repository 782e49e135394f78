/**
 * Finds a Redis for the demo and the examples, so that a fresh clone needs nothing but
 * `npm ci`: `REDIS_URL` when set, else 127.0.0.1:6379, else a throw-away `redis-server`
 * started for this run (free port, no persistence, temporary directory, removed at exit).
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Redis } from "ioredis";

/** The Redis a program will use, and how it was found. */
export interface ExampleRedis {
  url: string;
  /** `env`: REDIS_URL; `default`: 127.0.0.1:6379 answered; `throw-away`: started for this run. */
  origin: "env" | "default" | "throw-away";
  /** One line for people: where it is and why. */
  description: string;
  /** Stops the throw-away server (nothing for the others). */
  stop(): Promise<void>;
}

/** Options of `findRedis`. */
export interface FindRedisOptions {
  /**
   * An explicit server; when set it must answer, nothing is started instead.
   * @default process.env.REDIS_URL
   */
  url?: string | undefined;
  /**
   * Where to look when `url` is not set.
   * @default "redis://127.0.0.1:6379"
   */
  defaultUrl?: string;
  /**
   * The server binary to start when nothing answers.
   * @default "redis-server"
   */
  redisServer?: string;
}

/** No Redis could be found or started; the message says what to do. */
export class NoRedisError extends Error {
  override name = "NoRedisError";
}

const hidePassword = (url: string) => url.replace(/\/\/[^@/]*@/, "//***@");

/** Resolves when a server answers PING at `url`; rejects with the reason otherwise. */
async function ping(url: string, timeoutMs: number): Promise<void> {
  const client = new Redis(url, {
    lazyConnect: true,
    connectTimeout: timeoutMs,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
  });
  client.on("error", () => {});
  try {
    await client.connect();
    await client.ping();
  } finally {
    client.disconnect();
  }
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() => (typeof address === "object" && address ? resolve(address.port) : reject()));
    });
  });
}

function installed(binary: string): boolean {
  try {
    execFileSync(binary, ["--version"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

async function startThrowAway(binary: string): Promise<{ url: string; stop(): Promise<void> }> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), "redactor-example-"));
  const child: ChildProcess = spawn(
    binary,
    ["--port", String(port), "--bind", "127.0.0.1", "--dir", dir, "--save", "", "--appendonly", "no"],
    { stdio: "ignore" },
  );
  const cleanup = () => {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    rmSync(dir, { recursive: true, force: true });
  };
  // Whatever way the program ends, the server must not outlive it.
  process.once("exit", cleanup);
  const url = `redis://127.0.0.1:${port}`;
  const deadline = Date.now() + 10_000;
  for (;;) {
    if (child.exitCode !== null) {
      cleanup();
      throw new NoRedisError(`${binary} exited at once (code ${child.exitCode}); try running it by hand`);
    }
    try {
      await ping(url, 500);
      break;
    } catch (err) {
      if (Date.now() > deadline) {
        cleanup();
        throw new NoRedisError(`${binary} did not answer within 10 s (${(err as Error).message})`);
      }
      await new Promise((r) => setTimeout(r, 25));
    }
  }
  return {
    url,
    async stop() {
      process.off("exit", cleanup);
      if (child.exitCode === null && child.signalCode === null) {
        const exited = new Promise((r) => child.once("exit", r));
        child.kill("SIGTERM");
        await exited;
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * Finds a Redis: `url` (REDIS_URL) if set, which must answer; else `defaultUrl` if it
 * answers; else a throw-away `redis-server`. Throws NoRedisError, saying what to install or
 * set, when none of these works.
 */
export async function findRedis(options: FindRedisOptions = {}): Promise<ExampleRedis> {
  const url = "url" in options ? options.url : process.env.REDIS_URL;
  const defaultUrl = options.defaultUrl ?? "redis://127.0.0.1:6379";
  const binary = options.redisServer ?? "redis-server";
  const nothing = async () => {};
  if (url) {
    try {
      await ping(url, 3000);
    } catch (err) {
      throw new NoRedisError(
        `REDIS_URL is ${hidePassword(url)} but no Redis answered there (${(err as Error).message}). ` +
          "Start that server, or unset REDIS_URL to use 127.0.0.1:6379 or a throw-away server.",
      );
    }
    return { url, origin: "env", description: `Redis at ${hidePassword(url)} (REDIS_URL)`, stop: nothing };
  }
  try {
    await ping(defaultUrl, 1000);
    return {
      url: defaultUrl,
      origin: "default",
      description: `Redis at ${hidePassword(defaultUrl)}`,
      stop: nothing,
    };
  } catch {
    // Nothing there: start one of our own if we can.
  }
  const where = hidePassword(defaultUrl).replace(/^redis:\/\//, "");
  if (!installed(binary)) {
    throw new NoRedisError(
      [
        `No Redis answered at ${where}, and redis-server is not installed, so none could be started.`,
        "Install it (Debian/Ubuntu):  sudo apt-get install redis-server",
        "              (macOS):       brew install redis",
        "or point to a server:        REDIS_URL=redis://host:6379",
      ].join("\n"),
    );
  }
  const server = await startThrowAway(binary);
  return {
    url: server.url,
    origin: "throw-away",
    description:
      `nothing answered at ${where}, so a throw-away redis-server was started at ` +
      `${server.url.replace(/^redis:\/\//, "")} (no persistence; removed at exit)`,
    stop: server.stop,
  };
}
