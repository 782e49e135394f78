/**
 * Operational log lines and their events: system start and stop, actor start, stop and restart,
 * and a lost and recovered Redis connection, each logged once, at info (a lost connection at
 * warn), with the fields a person needs, and each emitted as a typed event.
 */
import { describe, expect, it } from "vitest";
import {
  type ActorSystem,
  createSystem,
  defineActor,
  type SystemEventName,
  type SystemEvents,
  supervisor,
} from "../src/index.js";
import { uniqueId, useRedis } from "./harness/redis.js";
import { captureLogger, waitFor } from "./harness/system.js";

type Line = Record<string, unknown>;
const INFO = 30;
const WARN = 40;

/** The lines whose message is `msg` (and whose fields include `fields`). */
function linesOf(lines: Line[], msg: string, fields: Line = {}): Line[] {
  return lines.filter((l) => l.msg === msg && Object.entries(fields).every(([k, v]) => l[k] === v));
}

/** Records every occurrence of `names` on `system.events`. */
function record<E extends SystemEventName>(system: ActorSystem, names: readonly E[]) {
  const seen: { event: E; data: SystemEvents[E] }[] = [];
  for (const event of names) system.events.on(event, (data) => seen.push({ event, data }));
  return seen;
}

type Proto = { crash: { payload: Record<string, never> } };

describe("lifecycle log lines and events", () => {
  const redis = useRedis();

  it("logs and emits system start and stop, and actor start, stop and restart, once each", async () => {
    const { logger, lines } = captureLogger();
    const appId = uniqueId("logsys");
    const system = await createSystem({ appId, redis: redis().url, logger });
    // Attached right after createSystem resolves: system.started is still to come.
    const seen = record(system, [
      "system.started",
      "system.stopped",
      "actor.started",
      "actor.stopped",
      "actor.restarted",
    ] as const);
    const worker = uniqueId("worker");
    let setups = 0;
    await system.spawn(
      supervisor({
        id: "logsup",
        backoff: { minMs: 10, maxMs: 10, jitter: 0 },
        children: [
          defineActor<Proto>({
            id: worker,
            maxAttempts: 1,
            setup: () => {
              setups += 1;
              return {};
            },
            handlers: {
              crash: () => {
                throw new Error("engine flame-out");
              },
            },
          }),
        ],
      }),
    );
    await system.ref<Proto>(worker).tell("crash", {});
    await waitFor(() => setups === 2, 5000, "the restart");
    await waitFor(
      () => seen.filter((s) => s.event === "actor.started").length === 2,
      5000,
      "the start event",
    );
    await system.stop(worker);
    await system.shutdown();

    const started = linesOf(lines, "system started");
    expect(started).toHaveLength(1);
    expect(started[0]).toMatchObject({ level: INFO, appId, node: system.nodeId, cluster: false });
    expect(String(started[0]?.redis)).toContain(String(redis().port));

    const actorStarts = linesOf(lines, "actor started", { actor: worker });
    expect(actorStarts.map((l) => l.level)).toEqual([INFO, INFO]);

    const restarts = linesOf(lines, "restarting actor", { actor: worker });
    expect(restarts).toHaveLength(1);
    expect(restarts[0]).toMatchObject({ level: INFO, supervisor: "logsup", attempt: 1 });
    expect(String(restarts[0]?.reason)).toContain("engine flame-out");
    expect(typeof restarts[0]?.delayMs).toBe("number");

    const stops = linesOf(lines, "actor stopped", { actor: worker });
    expect(stops.map((l) => [l.level, l.reason])).toEqual([
      [INFO, "crash"],
      [INFO, "stop"],
    ]);

    const stopping = linesOf(lines, "system stopping");
    const stopped = linesOf(lines, "system stopped");
    expect(stopping).toHaveLength(1);
    expect(stopped).toHaveLength(1);
    expect(stopped[0]).toMatchObject({ level: INFO, appId, node: system.nodeId });
    expect(stopped[0]?.durationMs).toBeGreaterThanOrEqual(0);
    // Shutting down on purpose is not a lost connection.
    expect(lines.filter((l) => String(l.msg).startsWith("lost the Redis connection"))).toEqual([]);

    expect(seen.map((s) => s.event)).toEqual([
      "system.started",
      "actor.started",
      "actor.stopped",
      "actor.restarted",
      "actor.started",
      "actor.stopped",
      "system.stopped",
    ]);
    expect(seen[0]?.data).toEqual({ appId, node: system.nodeId });
    expect(seen[2]?.data).toEqual({ actor: worker, reason: "crash" });
    expect(seen[3]?.data).toMatchObject({ actor: worker, supervisor: "logsup", attempt: 1 });
    expect(seen[5]?.data).toEqual({ actor: worker, reason: "stop" });
    expect(seen[6]?.data).toMatchObject({ appId, node: system.nodeId });
  });
});

describe("Redis disconnect and reconnect", () => {
  // A server of its own: the test restarts it.
  const redis = useRedis();

  it("logs one warning with the cause per lost connection, and one info line when it is back", async () => {
    const { logger, lines } = captureLogger();
    const system = await createSystem({ appId: uniqueId("logdrop"), redis: redis().url, logger });
    const seen = record(system, ["redis.disconnected", "redis.reconnected"] as const);
    try {
      const before = Date.now();
      await redis().restart(400);
      await waitFor(
        () => seen.filter((s) => s.event === "redis.reconnected").length === 2,
        15_000,
        "both connections to come back",
      );
      // A few more attempts' worth of time: nothing more is logged for the same outage.
      await new Promise((r) => setTimeout(r, 300));
      const lost = lines.filter((l) => String(l.msg).startsWith("lost the Redis connection"));
      const back = lines.filter((l) => String(l.msg).startsWith("reconnected to Redis"));
      expect(lost.map((l) => l.connection).sort()).toEqual(["commands", "subscriber"]);
      expect(back.map((l) => l.connection).sort()).toEqual(["commands", "subscriber"]);
      for (const line of lost) {
        expect(line.level).toBe(WARN);
        expect(String(line.error).length).toBeGreaterThan(0);
        expect(String(line.msg)).toContain(String(line.error));
      }
      for (const line of back) {
        expect(line.level).toBe(INFO);
        // Down at least as long as the server was (generous: timers and restarts vary).
        expect(Number(line.downMs)).toBeGreaterThanOrEqual(200);
        expect(Number(line.downMs)).toBeLessThan(Date.now() - before + 50);
      }
      const events = seen.map((s) => s.event);
      expect(events.filter((e) => e === "redis.disconnected")).toHaveLength(2);
      expect(events.filter((e) => e === "redis.reconnected")).toHaveLength(2);
      for (const { event, data } of seen) {
        if (event === "redis.disconnected") expect((data as { error: string }).error).not.toBe("");
      }
      // While the server was down, attempts failed: the reconnect says with what.
      expect(
        seen.some((s) => s.event === "redis.reconnected" && (s.data as { error: string }).error !== ""),
      ).toBe(true);
      // The system works again.
      const echo = uniqueId("echo");
      await system.spawn(
        defineActor<{ ping: { payload: object; reply: string } }>({
          id: echo,
          handlers: { ping: () => "pong" },
        }),
      );
      expect(await system.ref<{ ping: { payload: object; reply: string } }>(echo).ask("ping", {})).toBe(
        "pong",
      );
    } finally {
      await system.shutdown();
    }
  });
});
