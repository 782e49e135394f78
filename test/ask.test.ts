/** Request/reply: ask() correlates by reply_to, from the system's own inbox. */
import { describe, expect, it } from "vitest";
import { defineActor, Priority } from "../src/index.js";
import { uniqueId, useRedis } from "./harness/redis.js";
import { useSystems, waitFor } from "./harness/system.js";

const redis = useRedis();
const newSystem = useSystems(redis);

type Calc = {
  square: { payload: { n: number }; reply: { n: number; square: number } };
  relay: { payload: { to: string; n: number }; reply: { viaRelay: number } };
};

function calc(id: string) {
  return defineActor<Calc>({
    id,
    replyTypes: { square: "square_result" },
    handlers: {
      square: async (p) => {
        await new Promise((r) => setTimeout(r, Math.random() * 5));
        return { n: p.n, square: p.n * p.n };
      },
      // A handler that itself asks another actor must not deadlock its own mailbox.
      relay: async (p, ctx) => {
        const r = await ctx.system.ref<Calc>(p.to).ask("square", { n: p.n });
        return { viaRelay: r.square };
      },
    },
  });
}

describe("ask", () => {
  it("resolves each of many concurrent asks with its own reply, across systems", async () => {
    const server = await newSystem();
    const client = await newSystem();
    const app = uniqueId("calc");
    await server.spawn(calc(app));
    const ref = client.ref<Calc>(app);
    const ns = Array.from({ length: 200 }, (_, i) => i);
    const replies = await Promise.all(ns.map((n) => ref.ask("square", { n }, { priority: Priority.HIGH })));
    expect(replies).toEqual(ns.map((n) => ({ n, square: n * n })));
    expect((client as unknown as { asks: { size: number } }).asks.size).toBe(0);
  });

  it("sends the reply with the request's priority, the declared type and reply_to", async () => {
    const system = await newSystem();
    const app = uniqueId("calc");
    await system.spawn(calc(app));
    const replies: Record<string, unknown>[] = [];
    const peer = redis().client();
    // Capture the reply on its way into the asker's inbox.
    const watcher = redis().client();
    await watcher.subscribe(`channel:${system.appId}`);
    watcher.on("message", async (_c, note: string) => {
      const id = note.slice("new_message:".length);
      replies.push(await peer.hgetall(`message:${id}`));
    });
    await system.ref<Calc>(app).ask("square", { n: 3 }, { priority: Priority.CRITICAL });
    await waitFor(() => replies.length > 0, 2000, "the reply");
    expect(replies[0]).toMatchObject({ type: "square_result", sender: app, recipient: system.appId });
    const outbox = await peer.zrange(`queue:${app}:outbox`, 0, -1);
    expect(JSON.parse(outbox[0] as string)).toMatchObject({ priority: 4, message_type: "square_result" });
  });

  it("lets a handler ask another actor (replies never queue behind its own work)", async () => {
    const system = await newSystem();
    const a = uniqueId("relay");
    const b = uniqueId("calc");
    await system.spawn(calc(a));
    await system.spawn(calc(b));
    await expect(system.ref<Calc>(a).ask("relay", { to: b, n: 12 })).resolves.toEqual({ viaRelay: 144 });
  });

  it("keeps resolving asks when a user actor takes over the system's own id", async () => {
    const appId = uniqueId("petal");
    const system = await newSystem({ appId });
    const calcId = uniqueId("calc");
    await system.spawn(calc(calcId));
    const telemetry: number[] = [];
    await system.spawn(
      defineActor<{ telemetry: { payload: { battery: number } } }>({
        id: appId,
        handlers: {
          telemetry: (p) => {
            telemetry.push(p.battery);
          },
        },
      }),
    );
    await system.ref(appId).tell("telemetry", { battery: 80 });
    await expect(system.ref<Calc>(calcId).ask("square", { n: 4 })).resolves.toEqual({ n: 4, square: 16 });
    await waitFor(() => telemetry.length === 1, 2000, "telemetry");
    await system.stop(appId);
    await expect(system.ref<Calc>(calcId).ask("square", { n: 5 })).resolves.toEqual({ n: 5, square: 25 });
  });
});
