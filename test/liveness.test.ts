/**
 * Liveness that a blocked event loop cannot fake: the heartbeat is kept by a worker thread with
 * its own connection, so a handler that blocks its process's event loop for longer than the
 * heartbeat key lives is not taken for a dead process by another one, and its message runs
 * once. The thread dies with the process (SIGKILL) and freezes with it (SIGSTOP).
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { defineActor } from "../src/index.js";
import { uniqueId, useRedis } from "./harness/redis.js";
import { type ChildWorker, startWorker, useSystems, waitFor } from "./harness/system.js";

const redis = useRedis();
const newSystem = useSystems(redis);
const dir = mkdtempSync(join(tmpdir(), "redactor-liveness-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

interface Run {
  key: string;
  pid: number;
  node: string;
  phase: "start" | "end";
  at: number;
}

function runs(file: string): Run[] {
  try {
    return readFileSync(file, "utf8")
      .split("\n")
      .filter(Boolean)
      .map((line) => JSON.parse(line) as Run);
  } catch {
    return [];
  }
}

function nodeOf(worker: ChildWorker): string {
  const match = worker.output().match(/^node (.+)$/m);
  if (!match?.[1]) throw new Error(`no node id in: ${worker.output()}`);
  return match[1];
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("liveness", () => {
  it("keeps the heartbeat of a process whose event loop is blocked (in process)", async () => {
    const system = await newSystem({ heartbeatMs: 200 });
    const admin = redis().client();
    const key = `heartbeat:${system.nodeId}`;
    const before = await admin.get(key);
    expect(before).not.toBeNull();
    // 1.5 s of synchronous work: 2.5 lifetimes of the key (600 ms).
    const until = Date.now() + 1500;
    while (Date.now() < until) {
      // blocked
    }
    // Read before this thread's own timers get a chance to run: only the thread kept it.
    expect(await admin.pttl(key)).toBeGreaterThan(0);
    expect(await admin.get(key)).not.toBe(before);
  });

  it("runs a 7 s synchronous handler once while another process serves the same actor", async () => {
    const actor = uniqueId("blocker");
    const file = join(dir, `${actor}.jsonl`);
    const env = { REDIS_URL: redis().url, ACTOR_ID: actor, RUNS_FILE: file };
    // Default heartbeatMs (2000: the key lives 6 s) and leaseMs (30 s).
    const workers = await Promise.all([
      startWorker("liveness-worker", { ...env, APP_ID: uniqueId("live-a") }),
      startWorker("liveness-worker", { ...env, APP_ID: uniqueId("live-b") }),
    ]);
    try {
      const observer = await newSystem();
      const admin = redis().client();
      const id = await observer.ref(actor).tell("block", { key: "b1", ms: 7000 });
      await waitFor(() => runs(file).length > 0, 10_000, "the handler to start");
      const started = runs(file)[0] as Run;
      const blocked = workers.find((w) => w.child.pid === started.pid) as ChildWorker;
      const beat = `heartbeat:${nodeOf(blocked)}`;
      // Throughout the block the blocked process's heartbeat is alive and the actor online.
      let samples = 0;
      while (Date.now() < started.at + 6900) {
        expect(await admin.exists(beat), `heartbeat at +${Date.now() - started.at} ms`).toBe(1);
        expect((await observer.status(actor))?.online).toBe(true);
        samples += 1;
        await sleep(250);
      }
      expect(samples).toBeGreaterThan(10);
      await waitFor(() => runs(file).some((r) => r.phase === "end"), 15_000, "the handler to end");
      await waitFor(async () => (await observer.messageStatus(id)) === "completed", 10_000, "completion");
      // The other process's sweeps (every second) had every chance to take it: they did not.
      await sleep(3000);
      expect(runs(file).filter((r) => r.phase === "start")).toHaveLength(1);
      expect(await admin.zcard(`queue:${actor}:dead`)).toBe(0);
    } finally {
      await Promise.all(workers.map((w) => w.kill("SIGKILL")));
    }
  }, 60_000);

  it("lets the heartbeat die with its process (SIGKILL) and freeze with it (SIGSTOP)", async () => {
    const env = { REDIS_URL: redis().url, HEARTBEAT_MS: "200", RUNS_FILE: join(dir, "unused.jsonl") };
    const observer = await newSystem();
    const admin = redis().client();

    const frozenActor = uniqueId("frozen");
    const frozen = await startWorker("liveness-worker", {
      ...env,
      ACTOR_ID: frozenActor,
      APP_ID: uniqueId("frozen-app"),
    });
    const frozenBeat = `heartbeat:${nodeOf(frozen)}`;
    try {
      expect(await admin.exists(frozenBeat)).toBe(1);
      frozen.child.kill("SIGSTOP");
      // A frozen process is taken for dead: its key expires after three periods.
      await waitFor(
        async () => (await admin.exists(frozenBeat)) === 0,
        5000,
        "the frozen heartbeat to expire",
      );
      expect((await observer.status(frozenActor))?.online).toBe(false);
      frozen.child.kill("SIGCONT");
      await waitFor(async () => (await observer.status(frozenActor))?.online === true, 5000, "thaw");
    } finally {
      frozen.child.kill("SIGCONT");
      await frozen.kill("SIGKILL");
    }
    await waitFor(async () => (await admin.exists(frozenBeat)) === 0, 5000, "the killed heartbeat to expire");
    expect((await observer.status(frozenActor))?.online).toBe(false);
  }, 30_000);

  it("never keeps a process alive: it exits by itself right after shutdown", async () => {
    const { spawn } = await import("node:child_process");
    const { fileURLToPath } = await import("node:url");
    const script = fileURLToPath(new URL("./fixtures/exit-after-shutdown.ts", import.meta.url));
    const child = spawn(process.execPath, ["--import", "tsx", script], {
      env: { ...process.env, REDIS_URL: redis().url, APP_ID: uniqueId("exiting") },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    let doneAt = 0;
    child.stdout.on("data", (d) => {
      out += d;
      if (!doneAt && out.includes("done")) doneAt = Date.now();
    });
    child.stderr.on("data", (d) => {
      out += d;
    });
    const code = await new Promise<number | null>((resolve) => {
      const timer = setTimeout(() => child.kill("SIGKILL"), 20_000);
      child.on("exit", (c) => {
        clearTimeout(timer);
        resolve(c);
      });
    });
    expect(out).toContain("done");
    expect(code).toBe(0);
    expect(Date.now() - doneAt).toBeLessThan(2000);
  }, 30_000);

  it("stops the heartbeat thread at shutdown: the key is gone and stays gone", async () => {
    const system = await newSystem({ heartbeatMs: 100 });
    await system.spawn(defineActor({ id: uniqueId("quiet"), handlers: {} }));
    const admin = redis().client();
    const key = `heartbeat:${system.nodeId}`;
    expect(await admin.exists(key)).toBe(1);
    await system.shutdown();
    await sleep(500);
    expect(await admin.exists(key)).toBe(0);
  });
});
