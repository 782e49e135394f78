/**
 * `npm run demo` runs as a user runs it: a child process that shows the exchange and exits 0;
 * `--follow` keeps running until SIGINT; it refuses to command a HEAR_FC that is already
 * online; and it finds its Redis (REDIS_URL, the default address, a throw-away server) or says
 * what to install.
 */
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { pino } from "pino";
import { describe, expect, it } from "vitest";
import { hearFc } from "../actors/hear-fc.js";
import { findRedis, NoRedisError } from "../examples/support/redis.js";
import { createSystem } from "../src/index.js";
import { freePort, startRedis, useRedis } from "./harness/redis.js";
import { waitFor } from "./harness/system.js";

const root = fileURLToPath(new URL("..", import.meta.url));
const redis = useRedis();

function run(command: string, args: string[], env: NodeJS.ProcessEnv) {
  return new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
    execFile(command, args, { cwd: root, env, timeout: 60_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === "number" ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

/** The rows of the live view whose columns match, in order (whitespace between them ignored). */
function rows(stdout: string, ...columns: string[]): string[] {
  return stdout.split("\n").filter((line) => {
    let at = 0;
    for (const column of columns) {
      const found = line.indexOf(column, at);
      if (found < 0) return false;
      at = found + column.length;
    }
    return true;
  });
}

describe("npm run demo", () => {
  it("shows commands, replies, telemetry and an alert, then exits 0", async () => {
    const { code, stdout, stderr } = await run("npm", ["run", "--silent", "demo"], {
      ...process.env,
      REDIS_URL: redis().url,
    });
    expect(code, `${stdout}\n${stderr}`).toBe(0);
    expect(stdout).toContain(`Redis: Redis at ${redis().url} (REDIS_URL)`);
    expect(stdout).toContain('Supervisor "drone" (one_for_one) started HEAR_FC and petal-app-manager');
    const gcToFc = "petal-app-manager → HEAR_FC";
    const fcToGc = "HEAR_FC → petal-app-manager";
    expect(rows(stdout, gcToFc, "health_check", "NORMAL", "ask")).toHaveLength(2);
    expect(
      rows(stdout, fcToGc, "health_response", "NORMAL", "healthy, battery 22%, landed", " ms"),
    ).toHaveLength(1);
    expect(rows(stdout, fcToGc, "configuration_ack", "HIGH", "applied")).toHaveLength(1);
    expect(rows(stdout, gcToFc, "command", "HIGH", "ask: takeoff to 20 m")).toHaveLength(1);
    expect(rows(stdout, fcToGc, "command_response", "HIGH", "takeoff-1 success")).toHaveLength(1);
    expect(rows(stdout, fcToGc, "command_response", "HIGH", "goto-2 failed: target is")).toHaveLength(1);
    expect(rows(stdout, fcToGc, "telemetry", "NORMAL", "taking_off").length).toBeGreaterThan(0);
    expect(rows(stdout, fcToGc, "alert", "HIGH", "warning: Low battery warning")).toHaveLength(1);
    expect(rows(stdout, gcToFc, "command", "CRITICAL", "ask: emergency_stop")).toHaveLength(1);
    expect(
      rows(stdout, fcToGc, "command_response", "CRITICAL", "estop-1 success: motors stopped"),
    ).toHaveLength(1);
    // The stop ran before the waypoints still queued: at most the one in hand went first.
    expect(stdout).toMatch(
      /emergency_stop ran (first|after waypoint 1 \(already in hand\)), ahead of [34] queued/,
    );
    expect(
      rows(stdout, fcToGc, "command_response", "HIGH", "failed: emergency stop in effect").length,
    ).toBeGreaterThan(1);
    expect(rows(stdout, fcToGc, "health_response", "critical: motors stopped")).toHaveLength(1);
    expect(stdout).toMatch(/asks: 8, latency p50 [\d.]+ ms, max [\d.]+ ms/);
    expect(stdout).toMatch(/failed: 0\n/);
    expect(stdout.trimEnd().endsWith("Done.")).toBe(true);
    // Not a terminal: no colour codes; logs (warnings and worse) go to stderr, not into the view.
    expect(stdout).not.toContain("\x1b[");
    expect(stdout).not.toContain('{"level"');
  });

  it("keeps running with --follow until SIGINT, then exits 0", async () => {
    const server = await startRedis();
    let child: ChildProcess | undefined;
    try {
      // One process (node --import tsx), so that the signal reaches the demo itself.
      child = spawn(process.execPath, ["--import", "tsx", "examples/demo.ts", "--follow"], {
        cwd: root,
        env: { ...process.env, REDIS_URL: server.url },
        stdio: ["ignore", "pipe", "pipe"],
      });
      let out = "";
      child.stdout?.on("data", (d) => {
        out += d;
      });
      child.stderr?.on("data", (d) => {
        out += d;
      });
      const exited = new Promise<number | null>((resolve) => child?.once("exit", (code) => resolve(code)));
      await waitFor(() => out.includes("following:") || child?.exitCode !== null, 30_000, "the follow mode");
      expect(out).toContain("following: telemetry once a second");
      child.kill("SIGINT");
      expect(await exited, out).toBe(0);
      expect(out).toContain("SIGINT: shutting down");
      // It marked its actors offline on the way out.
      const status = await server.client().hget("status:HEAR_FC", "status");
      expect(status).toBe("offline");
    } finally {
      if (child && child.exitCode === null) child.kill("SIGKILL");
      await server.stop();
    }
  });

  it("refuses to command a HEAR_FC that is already online", async () => {
    const server = await startRedis();
    const system = await createSystem({
      redis: server.url,
      appId: "someone-else",
      logger: pino({ level: "silent" }),
    });
    try {
      await system.spawn(hearFc({ telemetryHz: 0 }));
      const { code, stderr } = await run(process.execPath, ["--import", "tsx", "examples/demo.ts"], {
        ...process.env,
        REDIS_URL: server.url,
      });
      expect(code).toBe(1);
      expect(stderr).toContain("HEAR_FC is already online at this Redis");
      // It left the real one alone: nothing was sent to it.
      expect(await server.client().zcard("queue:HEAR_FC:inbox")).toBe(0);
    } finally {
      await system.shutdown();
      await server.stop();
    }
  });
});

describe("the demo's Redis", () => {
  it("uses REDIS_URL, and says so when nothing answers there", async () => {
    const found = await findRedis({ url: redis().url });
    expect(found).toMatchObject({ url: redis().url, origin: "env" });
    const port = await freePort();
    await expect(findRedis({ url: `redis://127.0.0.1:${port}` })).rejects.toThrow(
      new RegExp(`REDIS_URL is redis://127.0.0.1:${port} but no Redis answered there`),
    );
  });

  it("uses the default address when something answers there", async () => {
    const found = await findRedis({ url: undefined, defaultUrl: redis().url });
    expect(found.origin).toBe("default");
  });

  it("starts a throw-away redis-server when nothing answers, and stops it", async () => {
    const port = await freePort();
    const found = await findRedis({ url: undefined, defaultUrl: `redis://127.0.0.1:${port}` });
    try {
      expect(found.origin).toBe("throw-away");
      expect(found.description).toMatch(
        new RegExp(`nothing answered at 127.0.0.1:${port}, so a throw-away redis-server was started at`),
      );
      const again = await findRedis({ url: found.url });
      expect(again.origin).toBe("env");
    } finally {
      await found.stop();
    }
    await expect(findRedis({ url: found.url })).rejects.toThrow(/no Redis answered/);
  });

  it("says how to install redis-server when it cannot start one", async () => {
    const port = await freePort();
    const failure = findRedis({
      url: undefined,
      defaultUrl: `redis://127.0.0.1:${port}`,
      redisServer: "/nonexistent/redis-server",
    });
    await expect(failure).rejects.toBeInstanceOf(NoRedisError);
    await expect(failure).rejects.toThrow(/sudo apt-get install redis-server/);
  });
});
