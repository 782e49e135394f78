/**
 * Connection loss: Redis restarting (with AOF, so it keeps what it acknowledged) and dropped
 * connections. The system reconnects, re-subscribes, drains what arrived meanwhile, and loses
 * nothing that Redis kept; asks get their reply or their timeout; presence comes back.
 */

import { pino } from "pino";
import { describe, expect, it } from "vitest";
import {
  type ActorSystem,
  AskTimeoutError,
  createSystem,
  defineActor,
  RedisUnavailableError,
  type SystemOptions,
} from "../src/index.js";
import { startRedis, type TestRedis, uniqueId, useRedis } from "./harness/redis.js";
import { useSystems, waitFor } from "./harness/system.js";

type Proto = {
  work: { payload: { n: number } };
  echo: { payload: { n: number }; reply: { n: number } };
};

async function serve(system: ActorSystem, id: string, seen: Set<number>) {
  await system.spawn(
    defineActor<Proto>({
      id,
      handlers: {
        work: (p) => {
          seen.add(p.n);
        },
        echo: (p) => ({ n: p.n }),
      },
    }),
  );
}

describe("Redis restart", () => {
  it("keeps every acknowledged message across a restart and comes back online", async () => {
    const server: TestRedis = await startRedis({ appendOnly: true });
    const systems: ActorSystem[] = [];
    try {
      const newSystem = systemsOn(server, systems);
      const consumer = await newSystem({ leaseMs: 3000, heartbeatMs: 300 });
      const producer = await newSystem({ leaseMs: 3000, heartbeatMs: 300 });
      const app = uniqueId("fc");
      const seen = new Set<number>();
      await serve(consumer, app, seen);
      const ref = producer.ref<Proto>(app);

      const acknowledged: number[] = [];
      const askOutcomes: string[] = [];
      let stop = false;
      const stream = (async () => {
        for (let n = 0; !stop || n < 400; n++) {
          await ref.tell("work", { n }).then(() => acknowledged.push(n));
          if (n % 10 === 0) {
            await ref.ask("echo", { n }, { timeoutMs: 3000 }).then(
              (r) => askOutcomes.push(r.n === n ? "reply" : "wrong"),
              (e: unknown) => askOutcomes.push(e instanceof AskTimeoutError ? "timeout" : `error ${e}`),
            );
          }
          await new Promise((r) => setTimeout(r, 2));
          if (n > 5000) break;
        }
      })();
      await waitFor(() => acknowledged.length > 150, 10_000, "traffic");
      const restartAt = Date.now();
      await server.restart(700);
      const upAt = Date.now();
      let backOnlineAt = 0;
      await waitFor(
        async () => {
          const ok = (await consumer.status(app).catch(() => null))?.online === true;
          if (ok && !backOnlineAt) backOnlineAt = Date.now();
          return ok;
        },
        10_000,
        "online again",
      );
      stop = true;
      await stream;
      await waitFor(
        () => acknowledged.every((n) => seen.has(n)),
        15_000,
        "every acknowledged message handled",
      );
      console.log(
        `redis restart: down ${upAt - restartAt} ms; system online again ${backOnlineAt - upAt} ms after Redis was up; ` +
          `${acknowledged.length} tells acknowledged, all handled; asks: ${summarize(askOutcomes)}`,
      );
      expect(askOutcomes.every((o) => o === "reply" || o === "timeout")).toBe(true);
      expect(askOutcomes.filter((o) => o === "reply").length).toBeGreaterThan(askOutcomes.length / 2);
      expect(await consumer.listOnline()).toContain(app);
    } finally {
      await Promise.all(systems.map((s) => s.shutdown()));
      await server.stop();
    }
  }, 60_000);
});

describe("dropped connections", () => {
  const redis = useRedis();
  const newSystem = useSystems(redis);

  it.each(["pubsub", "normal"] as const)("survives CLIENT KILL of its %s connection", async (type) => {
    const system = await newSystem({ sweepMs: 60_000 });
    const app = uniqueId("fc");
    const seen = new Set<number>();
    await serve(system, app, seen);
    const ref = system.ref<Proto>(app);
    await ref.tell("work", { n: 1 });
    await waitFor(() => seen.has(1), 2000, "first message");
    const admin = redis().client();
    const clients = String(await admin.client("LIST")).split("\n");
    const suffix =
      type === "pubsub" ? `name=redactor:${system.appId}:sub ` : `name=redactor:${system.appId} `;
    const victim = clients.find((line) => line.includes(suffix));
    const id = victim?.match(/^id=(\d+)/)?.[1];
    expect(id).toBeDefined();
    await admin.client("KILL", "ID", id as string);
    await ref.tell("work", { n: 2 });
    await expect(ref.ask("echo", { n: 3 }, { timeoutMs: 3000 })).resolves.toEqual({ n: 3 });
    await waitFor(() => seen.has(2), 3000, "message after the kill");
    // Pub/sub works again: with no sweep, only a PUBLISH wakes the actor this fast.
    await waitFor(
      async () => {
        const [, count] = (await admin.pubsub("NUMSUB", `channel:${app}`)) as [string, number];
        return Number(count) === 1;
      },
      3000,
      "re-subscribed",
    );
    await ref.tell("work", { n: 4 });
    await waitFor(() => seen.has(4), 1000, "pub/sub wake-up");
  });

  it("with whenDisconnected 'fail', refuses sends during an outage with a clear error", async () => {
    const server = await startRedis();
    const systems: ActorSystem[] = [];
    try {
      const system = await systemsOn(server, systems)({ whenDisconnected: "fail" });
      await server.kill();
      await new Promise((r) => setTimeout(r, 100));
      const error = await system
        .ref("x")
        .tell("work", { n: 1 })
        .catch((e: unknown) => e);
      expect(error).toBeInstanceOf(RedisUnavailableError);
      expect((error as Error).message).toMatch(/connection is down .* whenDisconnected is "fail"/);
      await server.restart();
      await waitFor(
        async () => {
          try {
            await system.ref("x").tell("work", { n: 2 });
            return true;
          } catch {
            return false;
          }
        },
        10_000,
        "sends again",
      );
    } finally {
      await server.stop();
    }
  });
});

function summarize(outcomes: string[]): string {
  const counts: Record<string, number> = {};
  for (const o of outcomes) counts[o] = (counts[o] ?? 0) + 1;
  return JSON.stringify(counts);
}

/** A factory of systems on a server a test manages itself; it shuts them down. */
function systemsOn(server: TestRedis, created: ActorSystem[]) {
  return async (options: Partial<SystemOptions> = {}) => {
    const system = await createSystem({
      appId: uniqueId("sys"),
      redis: server.url,
      logger: pino({ level: "silent" }),
      ...options,
    });
    created.push(system);
    return system;
  };
}

describe("shutdown without Redis", () => {
  it("ends within its deadline when Redis is gone", async () => {
    const server = await startRedis();
    const systems: ActorSystem[] = [];
    try {
      const system = await systemsOn(server, systems)({ shutdownTimeoutMs: 300 });
      const seen = new Set<number>();
      await serve(system, uniqueId("fc"), seen);
      await server.kill();
      const t0 = Date.now();
      await system.shutdown();
      expect(Date.now() - t0).toBeLessThan(3000);
    } finally {
      await server.stop();
    }
  });
});
