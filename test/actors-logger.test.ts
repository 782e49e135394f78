/**
 * actors/logger.ts: records every message it receives whatever its type, replies included,
 * and answers log_query (filtered, limited) without recording the query.
 */
import { describe, expect, it } from "vitest";
import { type LoggerProtocol, logger } from "../actors/logger.js";
import { Priority } from "../src/index.js";
import { uniqueId, useRedis } from "./harness/redis.js";
import { useSystems, waitFor } from "./harness/system.js";

const redis = useRedis();
const newSystem = useSystems(redis);

describe("logger", () => {
  it("records messages of any type with their envelope", async () => {
    const log = logger({ id: uniqueId("logger") });
    const system = await newSystem();
    await system.spawn(log.definition);
    const ref = system.ref(log.id);
    const first = await ref.tell("telemetry", { battery_level: 80 }, { priority: Priority.NORMAL });
    await ref.tell("alert", { severity: "warning" }, { priority: Priority.HIGH });
    await ref.tell("anything_at_all", { n: 1 }, { priority: Priority.LOW });
    await waitFor(() => log.total === 3, 5000, "three entries");
    const entries = log.entries();
    expect(entries.map((e) => e.type).sort()).toEqual(["alert", "anything_at_all", "telemetry"]);
    expect(entries.find((e) => e.id === first)).toMatchObject({
      type: "telemetry",
      sender: system.appId,
      recipient: log.id,
      priority: Priority.NORMAL,
      payload: { battery_level: 80 },
      reply_to: null,
    });
    expect(await system.messageStatus(first)).toBe("completed");
  });

  it("answers log_query through Redis, filtered and limited, without recording it", async () => {
    const log = logger({ id: uniqueId("logger") });
    const system = await newSystem();
    await system.spawn(log.definition);
    const ref = system.ref(log.id);
    for (let n = 0; n < 5; n++) await ref.tell("tick", { n });
    await ref.tell("tock", { n: 99 });
    await waitFor(() => log.total === 6, 5000, "six entries");
    const query = system.ref<LoggerProtocol>(log.id);
    const ticks = await query.ask("log_query", { type: "tick", limit: 2 });
    expect(ticks.total).toBe(6);
    expect(ticks.entries.map((e) => (e.payload as { n: number }).n)).toEqual([3, 4]);
    const newer = await query.ask("log_query", { after_seq: 5 });
    expect(newer.entries.map((e) => e.type)).toEqual(["tock"]);
    expect(log.total).toBe(6);
  });

  it("keeps the latest entries up to its capacity", async () => {
    const log = logger({ id: uniqueId("logger"), capacity: 3 });
    const system = await newSystem();
    await system.spawn(log.definition);
    for (let n = 0; n < 5; n++) await system.ref(log.id).tell("n", { n });
    await waitFor(() => log.total === 5, 5000, "five entries");
    expect(log.entries().map((e) => e.seq)).toEqual([3, 4, 5]);
    log.clear();
    expect(log.entries()).toEqual([]);
    expect(log.total).toBe(5);
  });

  it("records replies, when it serves the inbox that replies come to", async () => {
    const appId = uniqueId("sys");
    // The logger takes over the system's own inbox: replies nobody waits for are recorded.
    const log = logger({ id: appId });
    const system = await newSystem({ appId });
    await system.spawn(log.definition);
    const other = uniqueId("other");
    await redis()
      .client()
      .zadd(
        `queue:${appId}:inbox`,
        3000,
        JSON.stringify({
          id: "late-reply",
          sender: other,
          recipient: appId,
          message_type: "command_response",
          payload: { command_id: "c1", status: "success" },
          priority: 3,
          timestamp: Date.now() / 1000,
          reply_to: "some-request-long-gone",
          timeout: null,
        }),
      );
    await redis().client().publish(`channel:${appId}`, "new_message:late-reply");
    await waitFor(() => log.total === 1, 5000, "the reply");
    expect(log.entries()[0]).toMatchObject({
      type: "command_response",
      sender: other,
      reply_to: "some-request-long-gone",
    });
  });
});
