/**
 * Races with time and with shutdown: no ask ever ends the process with an unhandled rejection
 * (its timeout fires while the send is held up by a paused or stopped Redis), shutdown waits for
 * spawns in flight and stops them, and every send still waiting for Redis settles at shutdown
 * with SystemStoppedError.
 */
import type { Redis } from "ioredis";
import { pino } from "pino";
import { describe, expect, it } from "vitest";
import {
  type ActorSystem,
  AskTimeoutError,
  createSystem,
  defineActor,
  SystemStoppedError,
} from "../src/index.js";
import { startRedis, type TestRedis, uniqueId, useRedis } from "./harness/redis.js";
import { captureLogger, startWorker, useSystems, waitFor } from "./harness/system.js";

const redis = useRedis();
const newSystem = useSystems(redis);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A server of its own, for a test that stops or pauses it. */
async function withOwnRedis(run: (server: TestRedis) => Promise<void>): Promise<void> {
  const server = await startRedis();
  try {
    await run(server);
  } finally {
    await server.stop();
  }
}

/** A system on `server` (shutdownTimeoutMs 500), then the server killed and the loss noticed. */
async function systemWithRedisDown(server: TestRedis): Promise<ActorSystem> {
  const system = await createSystem({
    appId: uniqueId("sys"),
    redis: server.url,
    logger: pino({ level: "silent" }),
    shutdownTimeoutMs: 500,
  });
  await server.kill();
  const client = (system as unknown as { cmd: Redis }).cmd;
  await waitFor(() => client.status !== "ready", 5000, "the client to notice");
  return system;
}

/** How `work` settled and when, ms after the call. */
async function settle(work: Promise<unknown>): Promise<{ error: unknown; ms: number }> {
  const started = performance.now();
  const error = await work.then(
    () => undefined,
    (e: unknown) => e,
  );
  return { error, ms: performance.now() - started };
}

describe("asks that time out while their send is held up", () => {
  it("timeoutMs 1, many times over: every rejection reaches the caller's catch", async () => {
    const system = await newSystem();
    const ref = system.ref(uniqueId("nobody"));
    let caught = 0;
    for (let i = 0; i < 30; i++) {
      try {
        await ref.ask("t", {}, { timeoutMs: 1 });
      } catch (err) {
        expect(err).toBeInstanceOf(AskTimeoutError);
        caught += 1;
      }
    }
    const all = await Promise.allSettled(
      Array.from({ length: 50 }, () => ref.ask("t", {}, { timeoutMs: 1 })),
    );
    expect(caught).toBe(30);
    expect(all.every((r) => r.status === "rejected")).toBe(true);
  });

  it("CLIENT PAUSE 3000 with timeoutMs 1000: AskTimeoutError after about 1 s, not 3", async () => {
    await withOwnRedis(async (server) => {
      const system = await createSystem({
        appId: uniqueId("sys"),
        redis: server.url,
        logger: pino({ level: "silent" }),
      });
      try {
        await server.client().client("PAUSE", 3000);
        const { error, ms } = await settle(system.ref(uniqueId("nobody")).ask("t", {}, { timeoutMs: 1000 }));
        expect(error).toBeInstanceOf(AskTimeoutError);
        expect(ms).toBeGreaterThanOrEqual(900);
        expect(ms).toBeLessThan(2800);
        // A tell held up by the pause goes through once it ends.
        await expect(system.ref(uniqueId("sink")).tell("t", {})).resolves.toEqual(expect.any(String));
      } finally {
        await system.shutdown();
      }
    });
  });

  it("Redis down for 3 s with timeoutMs 1000: AskTimeoutError after about 1 s", async () => {
    await withOwnRedis(async (server) => {
      const system = await createSystem({
        appId: uniqueId("sys"),
        redis: server.url,
        logger: pino({ level: "silent" }),
        shutdownTimeoutMs: 1000,
      });
      try {
        await server.kill();
        const { error, ms } = await settle(system.ref(uniqueId("nobody")).ask("t", {}, { timeoutMs: 1000 }));
        expect(error).toBeInstanceOf(AskTimeoutError);
        expect(ms).toBeLessThan(2800);
        await sleep(2000);
        await server.restart();
        await expect(system.ref(uniqueId("sink")).tell("t", {})).resolves.toEqual(expect.any(String));
      } finally {
        await system.shutdown();
      }
    });
  });

  it("in a real process: no ask's rejection ends it (timeoutMs 1, CLIENT PAUSE)", async () => {
    await withOwnRedis(async (server) => {
      const worker = await startWorker("asker", {
        REDIS_URL: server.url,
        APP_ID: uniqueId("asker"),
        MODE: "timeouts",
      });
      await waitFor(() => worker.child.exitCode !== null, 20_000, "the asker to finish");
      expect(worker.output()).toContain("survived");
      expect(worker.child.exitCode).toBe(0);
      const line = worker
        .output()
        .split("\n")
        .find((l) => l.startsWith("{")) as string;
      const rejections = JSON.parse(line);
      expect(rejections.AskTimeoutError).toBe(21);
      expect(rejections.pausedAfterMs).toBeLessThan(2800);
    });
  });

  it("in a real process: no ask's rejection ends it (Redis down for 3 s)", async () => {
    await withOwnRedis(async (server) => {
      const worker = await startWorker("asker", {
        REDIS_URL: server.url,
        APP_ID: uniqueId("asker"),
        MODE: "down",
      });
      await server.kill();
      await sleep(3000);
      await server.restart();
      await waitFor(() => worker.child.exitCode !== null, 20_000, "the asker to finish");
      expect(worker.output()).toContain("survived");
      expect(worker.child.exitCode).toBe(0);
      const line = worker
        .output()
        .split("\n")
        .find((l) => l.startsWith("{")) as string;
      expect(JSON.parse(line)).toEqual({ AskTimeoutError: 25 });
    });
  });
});

type Work = { work: { payload: { n: number } } };

describe("shutdown while a spawn is in flight", () => {
  for (const setupMs of [0, 300]) {
    it(`waits for the spawn, then stops it (setup ${setupMs} ms): nothing left running`, async () => {
      const { logger, lines } = captureLogger();
      const system = await createSystem({ appId: uniqueId("sys"), redis: redis().url, logger });
      const app = uniqueId("racer");
      const c = redis().client();
      // Messages already waiting: the actor claims at once when it starts.
      for (let n = 0; n < 5; n++) await system.ref<Work>(app).tell("work", { n });
      let handled = 0;
      const spawned = system.spawn(
        defineActor<Work, undefined>({
          id: app,
          setup: async () => {
            if (setupMs > 0) await sleep(setupMs);
            return undefined;
          },
          handlers: {
            work: async () => {
              await sleep(20);
              handled += 1;
            },
          },
        }),
      );
      await system.shutdown();
      await expect(spawned).resolves.toMatchObject({ id: app });
      expect(system.actorIds()).toEqual([]);
      expect(await c.zcard(`queue:${app}:processing`)).toBe(0);
      expect(await c.hget(`status:${app}`, "status")).toBe("offline");
      const handledAtShutdown = handled;
      // Nothing runs after shutdown: what was not handled is still in the inbox.
      await sleep(500);
      expect(handled).toBe(handledAtShutdown);
      expect(await c.zcard(`queue:${app}:inbox`)).toBe(5 - handled);
      expect(lines.filter((l) => (l.level as number) >= 50)).toEqual([]);
    });
  }

  it("a spawn that cannot finish by the shutdown deadline (Redis down) rejects with SystemStoppedError", async () => {
    await withOwnRedis(async (server) => {
      const system = await systemWithRedisDown(server);
      const spawned = settle(
        system.spawn(defineActor<Work>({ id: uniqueId("stuck"), handlers: { work: async () => {} } })),
      );
      await sleep(100);
      await system.shutdown();
      const { error, ms } = await spawned;
      expect(error).toBeInstanceOf(SystemStoppedError);
      expect(ms).toBeLessThan(5000);
      expect(system.actorIds()).toEqual([]);
    });
  });

  it("a spawn after shutdown began is refused with SystemStoppedError", async () => {
    const system = await newSystem();
    const stopping = system.shutdown();
    await expect(
      system.spawn(defineActor<Work>({ id: uniqueId("late"), handlers: { work: async () => {} } })),
    ).rejects.toBeInstanceOf(SystemStoppedError);
    await stopping;
  });
});

describe("sends still waiting for Redis at shutdown", () => {
  /** Tell, ask and broadcast, each started now, settled later. */
  function sendAll(system: ActorSystem) {
    const ref = system.ref(uniqueId("sink"));
    return [
      settle(ref.tell("t", {})),
      settle(ref.ask("t", {}, { timeoutMs: 60_000 })),
      settle(system.broadcast("t", {})),
    ];
  }

  it("Redis down: every pending send rejects with SystemStoppedError at shutdown", async () => {
    await withOwnRedis(async (server) => {
      const system = await systemWithRedisDown(server);
      const sends = sendAll(system);
      await sleep(300);
      const started = performance.now();
      await system.shutdown();
      expect(performance.now() - started).toBeLessThan(5000);
      for (const { error } of await Promise.all(sends)) expect(error).toBeInstanceOf(SystemStoppedError);
    });
  });

  it("Redis paused: pending sends reject with SystemStoppedError at the shutdown deadline", async () => {
    await withOwnRedis(async (server) => {
      const system = await createSystem({
        appId: uniqueId("sys"),
        redis: server.url,
        logger: pino({ level: "silent" }),
        shutdownTimeoutMs: 500,
      });
      await server.client().client("PAUSE", 5000);
      const sends = sendAll(system);
      await sleep(100);
      const started = performance.now();
      await system.shutdown();
      expect(performance.now() - started).toBeLessThan(4500);
      for (const { error, ms } of await Promise.all(sends)) {
        expect(error).toBeInstanceOf(SystemStoppedError);
        expect(ms).toBeLessThan(4500);
      }
    });
  });

  it("Redis up: sends in flight when shutdown starts complete normally", async () => {
    const system = await newSystem();
    const ref = system.ref(uniqueId("sink"));
    const tells = Array.from({ length: 20 }, (_, n) => settle(ref.tell("t", { n })));
    await system.shutdown();
    for (const { error } of await Promise.all(tells)) expect(error).toBeUndefined();
  });
});
