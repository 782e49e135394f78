/**
 * The script cache: Redis forgets loaded scripts on SCRIPT FLUSH, a restart or a failover. A
 * flush at any moment never fails a call and never makes a message run twice.
 */
import { describe, expect, it } from "vitest";
import { defineActor } from "../src/index.js";
import { uniqueId, useRedis } from "./harness/redis.js";
import { captureLogger, useSystems, waitFor } from "./harness/system.js";

const redis = useRedis();
const newSystem = useSystems(redis);

describe("script cache", () => {
  it("SCRIPT FLUSH every few ms while messages are sent, claimed, finished and asked", async () => {
    const app = uniqueId("flush");
    const { logger, lines } = captureLogger();
    const system = await newSystem({ logger });
    const runs = new Map<number, number>();
    await system.spawn(
      defineActor<{ n: { payload: { n: number }; reply: number } }>({
        id: app,
        handlers: {
          n: (p) => {
            runs.set(p.n, (runs.get(p.n) ?? 0) + 1);
            return p.n;
          },
        },
      }),
    );
    const admin = redis().client();
    let flushing = true;
    let flushes = 0;
    const flusher = (async () => {
      while (flushing) {
        await admin.script("FLUSH");
        flushes += 1;
        await new Promise((r) => setTimeout(r, 2));
      }
    })();
    const ref = system.ref<{ n: { payload: { n: number }; reply: number } }>(app);
    const total = 2000;
    try {
      for (let i = 0; i < total; i += 100) {
        await Promise.all(Array.from({ length: 100 }, (_, j) => ref.tell("n", { n: i + j })));
      }
      for (let i = 0; i < 20; i++) expect(await ref.ask("n", { n: total + i })).toBe(total + i);
      await waitFor(() => runs.size >= total + 20, 20_000, "every message");
    } finally {
      flushing = false;
      await flusher;
    }
    expect(flushes).toBeGreaterThan(20);
    expect([...runs.values()].every((n) => n === 1)).toBe(true);
    expect(lines.filter((l) => (l.level as number) >= 50)).toEqual([]);
    expect(await admin.zcard(`queue:${app}:dead`)).toBe(0);
  });
});
