/**
 * Memory pressure: with Redis over `maxmemory` (noeviction) writes are refused. The heartbeat and
 * lease scripts are not (their first write is one Redis never refuses), so a healthy process is
 * never taken for dead (by others or by itself), a message runs once, and apps stay online; a beat
 * that gets no answer is logged and emitted as `heartbeat.failed`. An evicting `maxmemory-policy` is warned about at
 * start, or refused with `requireNoEviction`.
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Redis } from "ioredis";
import { afterAll, describe, expect, it } from "vitest";
import { EvictionPolicyError } from "../src/errors.js";
import { createSystem, defineActor, RedisCommandError, type SystemEvents } from "../src/index.js";
import { uniqueId, useRedis } from "./harness/redis.js";
import { captureLogger, startWorker, useSystems, waitFor } from "./harness/system.js";

const redis = useRedis();
const newSystem = useSystems(redis);
const dir = mkdtempSync(join(tmpdir(), "redactor-oom-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Puts Redis over maxmemory: 4 MiB of filler, then the limit 2 MiB below the memory in use, so
 * that no write is accepted until it is lifted, whatever small amounts are freed meanwhile.
 * Returns what lifts it.
 */
async function overMaxmemory(admin: Redis): Promise<() => Promise<void>> {
  const prefix = uniqueId("filler");
  const keys = Array.from({ length: 16 }, (_, i) => `${prefix}:${i}`);
  const filler = "x".repeat(256 * 1024);
  for (const key of keys) await admin.set(key, filler);
  const used = Number(/used_memory:(\d+)/.exec(await admin.info("memory"))?.[1]);
  await admin.config("SET", "maxmemory", String(used - 2 * 1024 * 1024));
  await expect(admin.set(uniqueId("probe"), "x")).rejects.toThrow(/OOM/);
  return async () => {
    await admin.config("SET", "maxmemory", "0");
    await admin.del(...keys);
  };
}

describe("memory pressure", () => {
  it("keeps an 8 s handler to one run and every app online while writes are refused for 10 s", async () => {
    const actor = uniqueId("oom-actor");
    const workerApp = uniqueId("oom-worker");
    const file = join(dir, `${actor}.jsonl`);
    const worker = await startWorker("liveness-worker", {
      REDIS_URL: redis().url,
      APP_ID: workerApp,
      ACTOR_ID: actor,
      RUNS_FILE: file,
      REDACTOR_LOG_LEVEL: "warn",
    });
    const admin = redis().client();
    const observer = await newSystem();
    let lift: (() => Promise<void>) | undefined;
    try {
      const id = await observer.ref(actor).tell("sleep", { key: "s1", ms: 8000 });
      const starts = () =>
        readFileSync(file, "utf8")
          .split("\n")
          .filter((l) => l.includes('"start"'));
      await waitFor(
        () => {
          try {
            return starts().length > 0;
          } catch {
            return false;
          }
        },
        10_000,
        "the handler to start",
      );
      lift = await overMaxmemory(admin);
      const pressureStart = Date.now();
      while (Date.now() < pressureStart + 10_000) {
        // Still refused (nothing was freed meanwhile) …
        await expect(admin.set(uniqueId("probe"), "x")).rejects.toThrow(/OOM/);
        // … and every live app is still online.
        const online = await observer.listOnline();
        expect(online).toEqual(expect.arrayContaining([actor, workerApp, observer.appId]));
        await sleep(500);
      }
      await lift();
      lift = undefined;
      await waitFor(async () => (await observer.messageStatus(id)) === "completed", 45_000, "completion");
      expect(starts()).toHaveLength(1);
      expect(await admin.zcard(`queue:${actor}:dead`)).toBe(0);
      expect(await observer.listOnline()).toEqual(expect.arrayContaining([actor, workerApp]));
      // Its own heartbeat never failed: the heartbeat script is not refused over maxmemory.
      expect(worker.output()).not.toContain("heartbeat failed");
    } finally {
      await lift?.();
      await worker.kill("SIGKILL");
    }
  }, 90_000);

  it("runs 300 queued messages once each, none dead-lettered, across 10 s of refused writes", async () => {
    const actor = uniqueId("oom-queue");
    const file = join(dir, `${actor}.jsonl`);
    const env = { REDIS_URL: redis().url, ACTOR_ID: actor, RUNS_FILE: file, REDACTOR_LOG_LEVEL: "silent" };
    const workers = await Promise.all([
      startWorker("liveness-worker", { ...env, APP_ID: uniqueId("oom-q1") }),
      startWorker("liveness-worker", { ...env, APP_ID: uniqueId("oom-q2") }),
    ]);
    const admin = redis().client();
    const observer = await newSystem();
    let lift: (() => Promise<void>) | undefined;
    try {
      const ref = observer.ref(actor);
      const ids = await Promise.all(
        Array.from({ length: 300 }, (_, i) => ref.tell("sleep", { key: `q${i}`, ms: 40 })),
      );
      await waitFor(
        () => {
          try {
            return readFileSync(file, "utf8").includes('"start"');
          } catch {
            return false;
          }
        },
        10_000,
        "the first handler",
      );
      lift = await overMaxmemory(admin);
      await sleep(10_000);
      expect(await observer.listOnline()).toEqual(expect.arrayContaining([actor]));
      await lift();
      lift = undefined;
      await waitFor(
        async () => {
          const statuses = await Promise.all(ids.map((id) => observer.messageStatus(id)));
          return statuses.every((st) => st === "completed");
        },
        60_000,
        "every message completed",
      );
      const starts = new Map<string, number>();
      for (const line of readFileSync(file, "utf8").split("\n").filter(Boolean)) {
        const run = JSON.parse(line) as { key: string; phase: string };
        if (run.phase === "start") starts.set(run.key, (starts.get(run.key) ?? 0) + 1);
      }
      const twice = [...starts.values()].filter((n) => n > 1).length;
      expect({ keys: starts.size, twice }).toEqual({ keys: 300, twice: 0 });
      expect(await admin.zcard(`queue:${actor}:dead`)).toBe(0);
    } finally {
      await lift?.();
      await Promise.all(workers.map((w) => w.kill("SIGKILL")));
    }
  }, 120_000);

  it("keeps the heartbeat over maxmemory even when Redis lost the key", async () => {
    const system = await newSystem({ heartbeatMs: 200 });
    const admin = redis().client();
    const failed: SystemEvents["heartbeat.failed"][] = [];
    system.events.on("heartbeat.failed", (e) => failed.push(e));
    const key = `heartbeat:${system.nodeId}`;
    const lift = await overMaxmemory(admin);
    try {
      await admin.del(key);
      // Writes are refused, yet the heartbeat script writes the key again within a period or two.
      await expect(admin.set(uniqueId("probe"), "x")).rejects.toThrow(/OOM/);
      await waitFor(async () => (await admin.exists(key)) === 1, 3000, "the key written again");
      expect(await system.listOnline()).toContain(system.appId);
    } finally {
      await lift();
    }
    expect(failed).toEqual([]);
  });

  it("a tell refused over maxmemory rejects with a typed RedisCommandError (code OOM) and writes nothing", async () => {
    const system = await newSystem();
    const admin = redis().client();
    const app = uniqueId("refused");
    const lift = await overMaxmemory(admin);
    try {
      const error = await system
        .ref(app)
        .tell("t", {})
        .then(
          () => undefined,
          (err: unknown) => err,
        );
      expect(error).toBeInstanceOf(RedisCommandError);
      expect(error).toMatchObject({ code: "OOM" });
      expect((error as Error).message).toMatch(/maxmemory/);
      expect(await admin.exists(`queue:${app}:inbox`)).toBe(0);
    } finally {
      await lift();
    }
  });

  it("logs a beat it cannot keep and emits heartbeat.failed, then heartbeat.recovered", async () => {
    const { logger, lines } = captureLogger();
    const system = await newSystem({ heartbeatMs: 200, logger });
    const admin = redis().client();
    const failed: SystemEvents["heartbeat.failed"][] = [];
    const recovered: SystemEvents["heartbeat.recovered"][] = [];
    system.events.on("heartbeat.failed", (e) => failed.push(e));
    system.events.on("heartbeat.recovered", (e) => recovered.push(e));
    const key = `heartbeat:${system.nodeId}`;
    // Redis holds every write for 1.5 s: the beats in that time get no answer.
    await admin.call("CLIENT", "PAUSE", "1500", "WRITE");
    await waitFor(() => failed.length > 0, 3000, "heartbeat.failed");
    expect(failed[0]).toMatchObject({ node: system.nodeId, failures: 1 });
    expect(lines.some((l) => l.msg?.toString().startsWith("heartbeat failed") && l.level === 40)).toBe(true);
    await waitFor(() => recovered.length > 0, 5000, "heartbeat.recovered");
    expect(await admin.exists(key)).toBe(1);
    expect(recovered[0]?.failures).toBeGreaterThanOrEqual(1);
  });

  it("warns about an evicting maxmemory-policy, and refuses it with requireNoEviction", async () => {
    const admin = redis().client();
    await admin.config("SET", "maxmemory-policy", "allkeys-lru");
    try {
      const { logger, lines } = captureLogger();
      await newSystem({ logger });
      expect(
        lines.some((l) => l.level === 40 && String(l.msg).includes("maxmemory-policy allkeys-lru")),
      ).toBe(true);
      const before = (await admin.client("LIST")) as string;
      await expect(
        createSystem({
          appId: uniqueId("strict"),
          redis: redis().url,
          requireNoEviction: true,
          logger: captureLogger().logger,
        }),
      ).rejects.toThrow(EvictionPolicyError);
      // Nothing of the refused system is left connected.
      await sleep(200);
      expect(((await admin.client("LIST")) as string).split("\n").length).toBeLessThanOrEqual(
        before.split("\n").length,
      );
    } finally {
      await admin.config("SET", "maxmemory-policy", "noeviction");
    }
    const strict = await newSystem({ requireNoEviction: true });
    await strict.spawn(defineActor({ id: uniqueId("ok"), handlers: {} }));
  });
});
