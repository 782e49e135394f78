/**
 * Every example runs as a user runs it (`npm run example:<name>`), each in its own process
 * against its own throw-away Redis, exits 0 and prints what it is there to show. The Python
 * peer really runs under /usr/bin/python3 with redis-py (`.ci/run` installs python3-redis).
 */
import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { startRedis } from "./harness/redis.js";

const root = fileURLToPath(new URL("..", import.meta.url));

/** Runs `npm run example:<name>` against a fresh server; resolves with its exit code and output. */
async function example(name: string): Promise<{ code: number; stdout: string; stderr: string }> {
  const server = await startRedis();
  try {
    return await new Promise((resolve) => {
      execFile(
        "npm",
        ["run", "--silent", `example:${name}`],
        { cwd: root, env: { ...process.env, REDIS_URL: server.url }, timeout: 60_000 },
        (err, stdout, stderr) => {
          resolve({ code: err ? (typeof err.code === "number" ? err.code : 1) : 0, stdout, stderr });
        },
      );
    });
  } finally {
    await server.stop();
  }
}

describe.concurrent("examples", () => {
  it("hello: tell, ask, priorities, a timeout", async () => {
    const { code, stdout, stderr } = await example("hello");
    expect(code, stdout + stderr).toBe(0);
    expect(stdout).toContain("the first one is pending");
    // Told before the greeter ran, the hellos waited in Redis and ran highest priority first.
    const heard = stdout.split("\n").filter((line) => line.includes("greeter heard hello from"));
    expect(heard.map((line) => line.trim())).toEqual([
      "greeter heard hello from a CRITICAL sender (priority 4)",
      "greeter heard hello from a NORMAL sender (priority 2)",
      "greeter heard hello from a LOW sender (priority 1)",
    ]);
    expect(stdout).toContain("the first hello is now completed");
    expect(stdout).toContain(
      "Hello, Ada! The greeter heard from: a CRITICAL sender, a NORMAL sender, a LOW sender",
    );
    expect(stdout).toContain('AskTimeoutError: no reply from "nobody-home" within 300 ms');
  });

  it("supervision: restarts, rest_for_one, escalation, reverse-order stop", async () => {
    const { code, stdout, stderr } = await example("supervision");
    expect(code, stdout + stderr).toBe(0);
    expect(stdout).toContain("started its actors in order: flight-log, radio-link, HEAR_FC, station-echo");
    expect(stdout).toContain("radio-link: 3 packets, incarnation 1");
    expect(stdout).toMatch(/supervisor "drone" restarts radio-link in \d+ ms \(corrupt packet 4\)/);
    expect(stdout).toMatch(/supervisor "drone" restarts HEAR_FC in \d+ ms \(corrupt packet 4\)/);
    expect(stdout).toContain("radio-link: 0 packets, incarnation 2: a restart starts from fresh state");
    expect(stdout).toContain("the corrupt packet is failed");
    expect(stdout).toMatch(/supervisor "drone" failed: supervisor "drone" gave up after 2 restarts/);
    expect(stdout).toMatch(/supervisor "station" restarts HEAR_FC in \d+ ms/);
    expect(stdout).toContain("HEAR_FC is back: healthy");
    expect(stdout).toContain("flight-log started 1 time, station-echo 1");
    expect(stdout).toContain("station-echo, HEAR_FC, radio-link, flight-log");
  });

  it("typed-protocols: typed calls, a schema failure dead-lettered, the actor still serving", async () => {
    const { code, stdout, stderr } = await example("typed-protocols");
    expect(code, stdout + stderr).toBe(0);
    expect(stdout).toContain("capture replied: shot-1-pitch-45-yaw90.jpeg, shot-2-pitch-45-yaw90.jpeg");
    expect(stdout).toContain("its status: failed");
    expect(stdout).toMatch(
      /in queue:gimbal:dead: invalid-payload: payload of "point" fails its schema: pitch: .*; yaw: /,
    );
    expect(stdout).toContain("capture replied: shot-3-pitch-45-yaw90.raw");
  });

  it("timers: HEAR_FC's telemetry loop on durable timers, each missed-tick policy after a stop", async () => {
    const { code, stdout, stderr } = await example("timers");
    expect(code, stdout + stderr).toBe(0);
    expect(stdout).toMatch(/1\. running: [3-5] telemetry, [3-5] audit, [3-5] blink ticks/);
    const missed = Number(/after ~(\d+) missed periods/.exec(stdout)?.[1]);
    expect(missed).toBeGreaterThanOrEqual(4);
    expect(stdout).toContain('telemetry (missed: "once"): 1');
    // All: one per tick that fell while it was down (4 or 5, as the stop and restart fall on the grid).
    expect(stdout).toMatch(/audit {5}\(missed: "all"\): {2}[45]\n/);
    expect(stdout).toContain('blink     (missed: "skip"): 0');
    expect(stdout).toContain("every tick on the grid started at the first start");
    expect(stdout).toMatch(/(\d+) ticks handled, \1 distinct: no tick ran twice/);
    expect(stdout).toContain("3 timers cancelled");
  });

  it("python-peer: redis-py speaks to HEAR_FC per the wire protocol", async () => {
    const { code, stdout, stderr } = await example("python-peer");
    expect(code, stdout + stderr).toBe(0);
    const python = stdout
      .split("\n")
      .filter((line) => line.startsWith("python   │ "))
      .map((line) => line.slice("python   │ ".length));
    expect(python).toContain("HEAR_FC says it is online (ordering fifo-v1)");
    expect(python).toContain("health_response: healthy, battery 100%");
    expect(python).toContain("command_response for py_cmd_1: success (taking off to 15 m), priority 3");
    expect(
      python.some((line) =>
        /^redactor marked it failed: payload of "command" fails its schema: parameters\.lat/.test(line),
      ),
    ).toBe(true);
    expect(python.some((line) => /^telemetry from HEAR_FC: /.test(line))).toBe(true);
    expect(python).toContain("all exchanges worked");
    expect(stdout).toContain("redactor │ HEAR_FC refused command (invalid-payload), dead-lettered");
    expect(stdout).toContain("redactor │ the peer exited with 0");
  });
});
