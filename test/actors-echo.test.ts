/** actors/echo.ts: replies with exactly what it got, answers ping, refuses non-object payloads. */
import { describe, expect, expectTypeOf, it } from "vitest";
import { type EchoProtocol, echo } from "../actors/echo.js";
import { uniqueId, useRedis } from "./harness/redis.js";
import { useSystems, waitFor } from "./harness/system.js";

const redis = useRedis();
const newSystem = useSystems(redis);

describe("echo", () => {
  it("replies with the payload it got, as echo_reply", async () => {
    const id = uniqueId("echo");
    const system = await newSystem();
    await system.spawn(echo({ id }));
    const ref = system.ref<EchoProtocol<{ text: string; nested: { n: number[] } }>>(id);
    const payload = { text: "hello", nested: { n: [1, 2, 3] } };
    const reply = await ref.ask("echo", payload);
    expectTypeOf(reply).toEqualTypeOf<{ text: string; nested: { n: number[] } }>();
    expect(reply).toEqual(payload);
    const [wire] = (await redis().client().zrange(`queue:${id}:outbox`, 0, -1)).map((m) => JSON.parse(m));
    expect(wire).toMatchObject({ message_type: "echo_reply", sender: id, recipient: system.appId, payload });
  });

  it("answers ping with pong", async () => {
    const id = uniqueId("echo");
    const system = await newSystem();
    await system.spawn(echo({ id }));
    const before = Date.now() / 1000;
    const pong = await system.ref<EchoProtocol>(id).ask("ping", {});
    expect(pong.pong).toBe(true);
    expect(pong.timestamp).toBeGreaterThanOrEqual(before - 1);
  });

  it("dead-letters a payload that is not an object and keeps serving", async () => {
    const id = uniqueId("echo");
    const system = await newSystem();
    await system.spawn(echo({ id }));
    const bad = await system.ref(id).tell("echo", [1, 2, 3]);
    await waitFor(async () => (await system.messageStatus(bad)) === "failed", 5000, "the failed status");
    expect(await system.ref<EchoProtocol>(id).ask("echo", { still: "here" })).toEqual({ still: "here" });
  });
});
