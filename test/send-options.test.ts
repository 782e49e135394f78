/**
 * The options of one tell or ask are checked at the sender, before anything is sent: a wrong
 * priority, deadline or id never reaches the wire (where the recipient, or a script, would
 * refuse it) and never makes an ask time out at once.
 */
import { describe, expect, it } from "vitest";
import { InvalidOptionError } from "../src/index.js";
import { uniqueId, useRedis } from "./harness/redis.js";
import { useSystems } from "./harness/system.js";

const redis = useRedis();
const newSystem = useSystems(redis);

const badTells: [string, Record<string, unknown>][] = [
  ["priority 7", { priority: 7 }],
  ["priority 0", { priority: 0 }],
  ['priority "high"', { priority: "high" }],
  ["priority 2.5", { priority: 2.5 }],
  ["timeoutMs NaN", { timeoutMs: Number.NaN }],
  ["timeoutMs -1000", { timeoutMs: -1000 }],
  ["timeoutMs Infinity", { timeoutMs: Number.POSITIVE_INFINITY }],
  ["timeoutMs 2^31", { timeoutMs: 2 ** 31 }],
  ['id ""', { id: "" }],
  ["id with a lone surrogate", { id: "a\ud83d" }],
  ["id 42 (a number)", { id: 42 }],
];

describe("send options", () => {
  for (const [name, options] of badTells) {
    it(`tell and ask refuse ${name} with InvalidOptionError, sending nothing`, async () => {
      const system = await newSystem();
      const app = uniqueId("opts");
      const ref = system.ref(app);
      await expect(ref.tell("t", {}, options as never)).rejects.toBeInstanceOf(InvalidOptionError);
      await expect(ref.ask("t", {}, options as never)).rejects.toBeInstanceOf(InvalidOptionError);
      expect(await redis().client().exists(`queue:${app}:inbox`)).toBe(0);
    });
  }

  it("accepts every documented value", async () => {
    const system = await newSystem();
    const ref = system.ref(uniqueId("opts-ok"));
    for (const priority of [1, 2, 3, 4] as const) await ref.tell("t", {}, { priority, timeoutMs: 5000 });
    await ref.tell("t", {}, { id: uniqueId("id") });
  });
});
