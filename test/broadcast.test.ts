/** Broadcast: channel:broadcast reaches every actor, in every system, that handles the type. */
import { describe, expect, it } from "vitest";
import { defineActor } from "../src/index.js";
import { uniqueId, useRedis } from "./harness/redis.js";
import { useSystems, waitFor } from "./harness/system.js";

const redis = useRedis();
const newSystem = useSystems(redis);

type Alerts = { alert: { payload: { level: string } }; other: { payload: Record<string, never> } };

describe("broadcast", () => {
  it("delivers to the actors that declare the type, in every system, and to no one else", async () => {
    const got: string[] = [];
    const listener = (id: string, broadcasts: (keyof Alerts)[]) =>
      defineActor<Alerts>({
        id,
        broadcasts,
        handlers: {
          alert: (p, ctx) => {
            got.push(`${id}:${p.level}:${ctx.message.sender}`);
          },
          other: () => {},
        },
      });
    const one = await newSystem();
    const two = await newSystem();
    const a = uniqueId("a");
    const b = uniqueId("b");
    const deaf = uniqueId("deaf");
    await one.spawn(listener(a, ["alert"]));
    await two.spawn(listener(b, ["alert"]));
    await two.spawn(listener(deaf, []));
    // Garbage on the channel (a peer's own notification format) is ignored.
    await redis().client().publish("channel:broadcast", "system shutting down");
    await one.broadcast("alert", { level: "warning" });
    await waitFor(() => got.length === 2, 3000, "two deliveries");
    expect(got.sort()).toEqual([`${a}:warning:${one.appId}`, `${b}:warning:${one.appId}`].sort());
    await new Promise((r) => setTimeout(r, 100));
    expect(got).toHaveLength(2);
  });
});
