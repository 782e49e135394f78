/**
 * `durability: { replicas }`: sends and finishes wait for replicas (WAIT). Here on one server
 * with no replica, where every WAIT times out: what a caller sees, and how long it takes. The
 * failover cases are in cluster-faults.test.ts.
 */
import { describe, expect, it } from "vitest";
import { ReplicationError } from "../src/index.js";
import { uniqueId, useRedis } from "./harness/redis.js";
import { useSystems } from "./harness/system.js";

describe("durability with no replica", () => {
  const redis = useRedis();
  const newSystem = useSystems(redis);

  it("concurrent sends share one WAIT per master: ten reject within two WAITs, not ten", async () => {
    const system = await newSystem({ durability: { replicas: 1, timeoutMs: 300 } });
    const started = performance.now();
    const outcomes = await Promise.allSettled(
      Array.from({ length: 10 }, (_, i) => system.ref(uniqueId(`dur-${i}`)).tell("t", {})),
    );
    const elapsed = performance.now() - started;
    for (const outcome of outcomes) {
      expect(outcome.status).toBe("rejected");
      const error = (outcome as PromiseRejectedResult).reason;
      expect(error).toBeInstanceOf(ReplicationError);
      expect(error.message).toMatch(/connected_slaves/);
    }
    // One WAIT per send, one after another, would take 10 × 300 ms.
    expect(elapsed).toBeLessThan(1500);
  });

  it("a send repeated with the same id after a ReplicationError is not acknowledged either", async () => {
    const system = await newSystem({ durability: { replicas: 1, timeoutMs: 200 } });
    const to = system.ref(uniqueId("dur-repeat"));
    const id = uniqueId("msg");
    await expect(to.tell("t", {}, { id })).rejects.toBeInstanceOf(ReplicationError);
    await expect(to.tell("t", {}, { id })).rejects.toBeInstanceOf(ReplicationError);
    // The message itself is in, once: the master has it.
    expect(await system.messageStatus(id)).toBe("pending");
  });
});
