/**
 * Retries with default options ride out a downstream outage of several seconds: more attempts
 * and a jittered backoff whose waits add up to about 20 to 30 s (README, "Retries").
 */
import { describe, expect, it } from "vitest";
import { backoffDelay } from "../src/backoff.js";
import { DEFAULT_MAX_ATTEMPTS, DEFAULT_RETRY_BACKOFF, defineActor } from "../src/index.js";
import { uniqueId, useRedis } from "./harness/redis.js";
import { useSystems, waitFor } from "./harness/system.js";

const redis = useRedis();
const newSystem = useSystems(redis);

describe("retry defaults", () => {
  it("the default waits between attempts add up to 20-30 s", () => {
    const total = (random: () => number) =>
      Array.from({ length: DEFAULT_MAX_ATTEMPTS - 1 }, (_, i) =>
        backoffDelay(DEFAULT_RETRY_BACKOFF, i + 1, random),
      ).reduce((a, b) => a + b, 0);
    expect(total(() => 0.5)).toBe(25_750);
    expect(total(() => 0)).toBeGreaterThanOrEqual(20_000);
    expect(total(() => 1)).toBeLessThanOrEqual(30_000);
  });

  it("a 2 s downstream outage dead-letters nothing of 300 queued messages (default options)", async () => {
    const app = uniqueId("outage");
    const system = await newSystem();
    const ref = system.ref<{ call: { payload: { n: number } } }>(app);
    await Promise.all(Array.from({ length: 300 }, (_, n) => ref.tell("call", { n })));
    let downUntil = 0;
    const done = new Set<number>();
    await system.spawn(
      defineActor<{ call: { payload: { n: number } } }>({
        id: app,
        handlers: {
          call: (p) => {
            if (Date.now() < downUntil) throw new Error("downstream unavailable");
            done.add(p.n);
          },
        },
      }),
    );
    downUntil = Date.now() + 2000;
    await waitFor(() => done.size === 300, 40_000, "every message after the outage");
    expect(await redis().client().zcard(`queue:${app}:dead`)).toBe(0);
  }, 60_000);
});
