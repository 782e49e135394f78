/**
 * Graceful shutdown: stop claiming, let the handler in flight finish (within the deadline),
 * put the rest of the claimed batch back in the inbox at once, mark actors offline.
 */
import { describe, expect, it } from "vitest";
import { defineActor } from "../src/index.js";
import { uniqueId, useRedis } from "./harness/redis.js";
import { useSystems, waitFor } from "./harness/system.js";

const redis = useRedis();
const newSystem = useSystems(redis);

type Slow = { slow: { payload: { n: number; ms: number } } };

describe("graceful shutdown", () => {
  it("finishes the handler in flight and hands the rest of its batch back at once", async () => {
    const app = uniqueId("slow");
    const system = await newSystem({ leaseMs: 60_000 });
    const done: number[] = [];
    const started: number[] = [];
    const ids: string[] = [];
    for (let n = 0; n < 5; n++) ids.push(await system.ref<Slow>(app).tell("slow", { n, ms: 300 }));
    // All five are queued before the actor starts, so its first claim takes them as one batch.
    await system.spawn(
      defineActor<Slow>({
        id: app,
        claimBatch: 10,
        handlers: {
          slow: async (p) => {
            started.push(p.n);
            await new Promise((r) => setTimeout(r, p.ms));
            done.push(p.n);
          },
        },
      }),
    );
    await waitFor(() => started.length === 1, 3000, "the first handler");
    const t0 = Date.now();
    await system.shutdown();
    // The handler in flight finished; the others never started and are back in the inbox now,
    // long before their 60 s lease would have expired.
    expect(done).toEqual([0]);
    expect(Date.now() - t0).toBeLessThan(5000);
    const admin = redis().client();
    expect(await admin.zcard(`queue:${app}:inbox`)).toBe(4);
    expect(await admin.zcard(`queue:${app}:processing`)).toBe(0);
    expect(await admin.hget(`message:${ids[0]}`, "status")).toBe("completed");
    for (const id of ids.slice(1)) {
      // Handed back unstarted: it used no attempt (a missing count means 0).
      const [status, attempts] = await admin.hmget(`message:${id}`, "status", "attempts");
      expect([status, attempts ?? "0"]).toEqual(["pending", "0"]);
    }
    expect(await admin.hget(`status:${app}`, "status")).toBe("offline");
    // The next incarnation, in another system, takes them in order.
    const next = await newSystem();
    const order: number[] = [];
    await next.spawn(
      defineActor<Slow>({
        id: app,
        handlers: {
          slow: (p) => {
            order.push(p.n);
          },
        },
      }),
    );
    await waitFor(() => order.length === 4, 3000, "the rest");
    expect(order).toEqual([1, 2, 3, 4]);
  });

  it("releases a handler that outlives the shutdown deadline", async () => {
    const app = uniqueId("stuck");
    const system = await newSystem({ shutdownTimeoutMs: 200 });
    let started = false;
    await system.spawn(
      defineActor<Slow>({
        id: app,
        handlers: {
          slow: async (p) => {
            started = true;
            await new Promise((r) => setTimeout(r, p.ms));
          },
        },
      }),
    );
    const id = await system.ref<Slow>(app).tell("slow", { n: 0, ms: 2000 });
    await waitFor(() => started, 3000, "the handler");
    const t0 = Date.now();
    await system.shutdown();
    expect(Date.now() - t0).toBeLessThan(1500);
    const admin = redis().client();
    expect(await admin.hget(`message:${id}`, "status")).toBe("pending");
    expect(await admin.zcard(`queue:${app}:inbox`)).toBe(1);
  });
});
