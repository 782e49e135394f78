/**
 * Clocks: the timestamps redactor writes follow Redis' clock (an offset to `TIME`, measured at
 * the midpoint of the round trip), so deadlines hold whatever the sender's clock says. Senders
 * are real processes whose clock is shifted (test/fixtures/skew-clock.mjs): 10 s behind, a fresh
 * message with a 5 s deadline runs and an ask is answered; 60 s ahead, a message whose deadline
 * really passed never runs.
 */
import { fileURLToPath } from "node:url";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { IncreasingMicros, RedisClock } from "../src/clock.js";
import { defineActor } from "../src/index.js";
import { uniqueId, useRedis } from "./harness/redis.js";
import { runScript, useSystems, waitFor } from "./harness/system.js";

const redis = useRedis();
const newSystem = useSystems(redis);

const fixture = (name: string) => fileURLToPath(new URL(`./fixtures/${name}`, import.meta.url));

/** Runs a script in a process whose clock is skewed by CLOCK_SKEW_MS (in `env`). */
function runSkewed(script: string, args: string[], env: Record<string, string>) {
  return runScript(script, { args, env, imports: [fixture("skew-clock.mjs")] });
}

/** Runs the skewed sender to completion and returns its JSON line. */
async function runSkewedSender(env: Record<string, string>): Promise<Record<string, unknown>> {
  const { out } = await runSkewed(fixture("skewed-sender.ts"), [], env);
  const line = out.split("\n").find((l) => l.startsWith("{"));
  if (!line) throw new Error(`the skewed sender printed no result: ${out}`);
  return JSON.parse(line);
}

type Work = { work: { payload: { key: string }; reply: { ok: true; key: string } } };

async function redisNowSeconds(): Promise<number> {
  const [s, us] = await redis().client().time();
  return Number(s) + Number(us) / 1e6;
}

describe("clocks", () => {
  it("stamps messages with Redis' time, not the local clock", async () => {
    const system = await newSystem();
    const actor = uniqueId("stamped");
    const id = await system.ref(actor).tell("work", { key: "k" });
    const stamped = Number(await redis().client().hget(`message:${id}`, "timestamp"));
    expect(Math.abs(stamped - (await redisNowSeconds()))).toBeLessThan(1);
    const clock = new RedisClock(redis().client());
    const sample = await clock.sync();
    expect(sample.rttMs).toBeGreaterThanOrEqual(0);
    expect(Math.abs(clock.nowMs() / 1000 - (await redisNowSeconds()))).toBeLessThan(0.5);
  });

  it("hands out strictly increasing microseconds whatever the base clock does (property)", () => {
    const seed = Number(process.env.CLOCK_SEED ?? 20261129);
    fc.assert(
      fc.property(
        fc.array(fc.double({ min: -120_000, max: 120_000, noNaN: true }), { minLength: 1, maxLength: 200 }),
        (steps) => {
          const micros = new IncreasingMicros();
          let base = 1_764_000_000_000;
          let last = 0;
          for (const step of steps) {
            base += step;
            const us = micros.next(base);
            expect(us).toBeGreaterThan(last);
            // Never behind the base clock.
            expect(us).toBeGreaterThanOrEqual(Math.floor(base * 1000));
            last = us;
          }
        },
      ),
      { seed, numRuns: 200 },
    );
  });

  it("runs a fresh message and answers an ask from a sender whose clock is 10 s behind", async () => {
    const system = await newSystem();
    const actor = uniqueId("behind-target");
    const ran: string[] = [];
    await system.spawn(
      defineActor<Work>({
        id: actor,
        handlers: {
          work: (p) => {
            ran.push(p.key);
            return { ok: true, key: p.key };
          },
        },
      }),
    );
    const env = { REDIS_URL: redis().url, TARGET: actor, TIMEOUT_MS: "5000", CLOCK_SKEW_MS: "-10000" };
    const told = await runSkewedSender({ ...env, APP_ID: uniqueId("behind-teller") });
    // Its local clock really was 10 s behind …
    expect(Number(told.localNow) / 1000).toBeLessThan((await redisNowSeconds()) - 9);
    // … but the message carries Redis' time, so its 5 s deadline is 5 s from now.
    const stamped = Number(await redis().client().hget(`message:${told.id}`, "timestamp"));
    expect(Math.abs(stamped - (await redisNowSeconds()))).toBeLessThan(5);
    await waitFor(
      async () => (await system.messageStatus(String(told.id))) === "completed",
      5000,
      "the tell",
    );
    expect(ran).toHaveLength(1);

    const askerApp = uniqueId("behind-asker");
    const asked = await runSkewedSender({ ...env, APP_ID: askerApp, ASK: "1" });
    expect(asked).toEqual({ reply: { ok: true, key: askerApp } });
  }, 60_000);

  it("the CLI's send stamps Redis' time too: a --timeout 5s message from a host 10 s behind runs", async () => {
    const system = await newSystem();
    const app = uniqueId("cli-skew");
    const seen: string[] = [];
    await system.spawn(
      defineActor({ id: app, handlers: { t: (_p: unknown, ctx) => void seen.push(ctx.message.id) } }),
    );
    const cli = fileURLToPath(new URL("../src/cli/main.ts", import.meta.url));
    const { code } = await runSkewed(cli, ["send", app, "t", "{}", "--timeout", "5s"], {
      REDIS_URL: redis().url,
      CLOCK_SKEW_MS: "-10000",
    });
    expect(code).toBe(0);
    await waitFor(() => seen.length === 1, 5000, "the message to run");
  });

  it("never runs a message whose deadline really passed, from a sender whose clock is 60 s ahead", async () => {
    const system = await newSystem();
    const actor = uniqueId("ahead-target");
    const told = await runSkewedSender({
      REDIS_URL: redis().url,
      TARGET: actor,
      TIMEOUT_MS: "5000",
      CLOCK_SKEW_MS: "60000",
      APP_ID: uniqueId("ahead-teller"),
    });
    expect(Number(told.localNow) / 1000).toBeGreaterThan((await redisNowSeconds()) + 59);
    const stamped = Number(await redis().client().hget(`message:${told.id}`, "timestamp"));
    // Wait until its deadline has passed by Redis' clock, then start serving the actor.
    await waitFor(async () => (await redisNowSeconds()) > stamped + 6, 15_000, "the deadline to pass");
    const ran: string[] = [];
    await system.spawn(
      defineActor<Work>({
        id: actor,
        handlers: {
          work: (p) => {
            ran.push(p.key);
            return { ok: true, key: p.key };
          },
        },
      }),
    );
    await waitFor(async () => (await system.messageStatus(String(told.id))) === "timeout", 5000, "timeout");
    expect(ran).toHaveLength(0);
  }, 60_000);
});
