/** Request/reply: ask() correlates by reply_to, from the system's own inbox. */
import { expect, it } from "vitest";
import { defineActor, Priority } from "../src/index.js";
import { describeBackends, MASTERS_ONLY, useBackendSystems } from "./harness/backends.js";
import { uniqueId } from "./harness/redis.js";
import { waitFor, waitForValue } from "./harness/system.js";

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

describeBackends(
  "ask",
  (backend) => {
    const newSystem = useBackendSystems(backend);

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
      const peer = backend().client();
      await system.ref<Calc>(app).ask("square", { n: 3 }, { priority: Priority.CRITICAL });
      // The replier's outbox copy names the reply; its hash lives in the asker's slot.
      const outbox = await waitForValue(
        async () => (await peer.zrange(backend().keys.outbox(app), 0, -1))[0] ?? null,
        2000,
        "the reply's outbox copy",
      );
      const reply = JSON.parse(outbox) as Record<string, unknown>;
      expect(reply).toMatchObject({ priority: 4, message_type: "square_result", recipient: system.appId });
      expect(await peer.hgetall(backend().keys.message(system.appId, String(reply.id)))).toMatchObject({
        type: "square_result",
        sender: app,
        recipient: system.appId,
      });
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
  },
  MASTERS_ONLY,
);
