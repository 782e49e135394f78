/**
 * A failed ask is reported at once: a request the recipient dead-letters gets an error reply in
 * the peers' convention (id `error_<request id>`, payload `{"status": "error", "message": …}`,
 * `reply_to` set, nine fields), and `ask()` rejects with AskFailedError carrying the reason.
 */
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { z } from "zod";
import { AskFailedError, defineActor, type SystemEvents } from "../src/index.js";
import { uniqueId, useRedis } from "./harness/redis.js";
import { runProcess, useSystems, waitFor, waitForValue } from "./harness/system.js";

const redis = useRedis();
const newSystem = useSystems(redis);

/** Well under every ask's timeout: a failure must not wait for it. */
const PROMPT_MS = 5000;
const ASK_TIMEOUT_MS = 30_000;

type Work = {
  work: { payload: { n: number }; reply: { n: number } };
  big: { payload: Record<string, never>; reply: string };
};

function worker(id: string) {
  return defineActor<Work>({
    id,
    maxAttempts: 1,
    onFailure: "resume",
    schemas: { work: z.object({ n: z.number() }) },
    replyTypes: { work: "work_result" },
    handlers: {
      work: async (p) => {
        if (p.n < 0) throw new RangeError(`n must not be negative, got ${p.n}`);
        return { n: p.n };
      },
      big: async () => "x".repeat(20_000),
    },
  });
}

/** The rejection of `ask`, with how long it took. */
async function failure(ask: Promise<unknown>): Promise<{ err: AskFailedError; ms: number }> {
  const started = performance.now();
  const err = await ask.then(
    () => {
      throw new Error("the ask resolved; it should have failed");
    },
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(AskFailedError);
  return { err: err as AskFailedError, ms: performance.now() - started };
}

describe("a failed ask", () => {
  it("rejects at once when the recipient refuses the request as oversize (its limit is smaller than the asker's)", async () => {
    const asker = await newSystem();
    const server = await newSystem({ maxMessageBytes: 4000 });
    const app = uniqueId("small");
    await server.spawn(worker(app));
    const { err, ms } = await failure(
      asker.ref(app).ask("work", { n: 1, pad: "x".repeat(10_000) }, { timeoutMs: ASK_TIMEOUT_MS }),
    );
    expect(err.reason).toBe("oversize");
    expect(ms).toBeLessThan(ASK_TIMEOUT_MS / 2);
  });

  it("rejects at once with the reason and the handler's text: handler error, schema, unknown type, reply", async () => {
    const system = await newSystem({ maxMessageBytes: 10_000 });
    const app = uniqueId("worker");
    await system.spawn(worker(app));
    const failed: SystemEvents["ask.failed"][] = [];
    system.events.on("ask.failed", (e) => failed.push(e));
    const ref = system.ref<Work>(app);
    const untyped = system.ref(app);
    const opts = { timeoutMs: ASK_TIMEOUT_MS };
    const cases = [
      {
        ask: ref.ask("work", { n: -1 }, opts),
        reason: "handler-error",
        text: "RangeError: n must not be negative",
      },
      {
        ask: untyped.ask("work", { n: "one" }, opts),
        reason: "invalid-payload",
        text: 'payload of "work" fails',
      },
      { ask: untyped.ask("nope", {}, opts), reason: "unknown-type", text: 'no handler for "nope"' },
      { ask: ref.ask("big", {}, opts), reason: "reply-error", text: "over the 10000-byte limit" },
    ];
    // Each ask's rejection is handled from the start (they fail in whatever order).
    const outcomes = cases.map((c) => failure(c.ask));
    for (const [i, c] of cases.entries()) {
      const { err, ms } = await (outcomes[i] as ReturnType<typeof failure>);
      expect(err.reason).toBe(c.reason);
      expect(err.detail).toContain(c.text);
      expect(err.recipient).toBe(app);
      expect(err.message).toContain(c.reason);
      expect(ms).toBeLessThan(PROMPT_MS);
      expect(await system.messageStatus(err.messageId)).toBe("failed");
    }
    expect(failed.map((e) => e.reason).sort()).toEqual(cases.map((c) => c.reason).sort());
    // A request that succeeds still gets its reply.
    await expect(ref.ask("work", { n: 2 }, opts)).resolves.toEqual({ n: 2 });
    expect((system as unknown as { asks: { size: number } }).asks.size).toBe(0);
    expect(await redis().client().zcard(`queue:${app}:dead`)).toBe(cases.length);
  });

  it("a raw Python-style asker gets the error reply in the peers' convention, nine fields", async () => {
    const system = await newSystem();
    const app = uniqueId("worker");
    await system.spawn(worker(app));
    const c = redis().client();
    const asker = uniqueId("py-asker");
    const send = async (message: Record<string, unknown>, score: number) => {
      await c.zadd(`queue:${app}:inbox`, score, JSON.stringify(message));
      await c.publish(`channel:${app}`, `new_message:${message.id}`);
    };
    const replyTo = (id: string) =>
      waitForValue(
        async () => {
          const members = await c.zrange(`queue:${asker}:inbox`, 0, -1);
          const found = members.map((m) => JSON.parse(m)).find((m) => m.reply_to === id);
          return found ?? null;
        },
        PROMPT_MS,
        `the reply to ${id}`,
      );
    const now = Date.now() / 1000;
    const base = { sender: asker, recipient: app, reply_to: null, timeout: 10 };
    // The handler throws.
    await send(
      { id: "py-1", message_type: "work", payload: { n: -5 }, priority: 3, timestamp: now, ...base },
      3000 + now,
    );
    const reply = await replyTo("py-1");
    expect(Object.keys(reply).sort()).toEqual(
      [
        "id",
        "sender",
        "recipient",
        "message_type",
        "payload",
        "priority",
        "timestamp",
        "reply_to",
        "timeout",
      ].sort(),
    );
    expect(reply).toMatchObject({
      id: "error_py-1",
      sender: app,
      recipient: asker,
      message_type: "work_result",
      priority: 3,
      reply_to: "py-1",
      timeout: null,
      payload: { status: "error", reason: "handler-error", message: expect.stringContaining("RangeError") },
    });
    expect(typeof reply.timestamp).toBe("number");
    // A request that breaks the envelope rules (priority 9) is answered too: invalid-envelope.
    await send(
      { id: "py-2", message_type: "work", payload: { n: 1 }, priority: 9, timestamp: now, ...base },
      2000 + now,
    );
    expect(await replyTo("py-2")).toMatchObject({
      id: "error_py-2",
      message_type: "work_result",
      priority: 2,
      payload: { status: "error", reason: "invalid-envelope", message: expect.stringContaining("priority") },
    });
    // A tell (no timeout) is not a request: dead-lettered without a reply.
    await send(
      { id: "py-3", message_type: "nope", payload: {}, priority: 2, timestamp: now, ...base, timeout: null },
      2000 + now,
    );
    await waitFor(async () => (await c.zcard(`queue:${app}:dead`)) === 3, PROMPT_MS, "the third dead letter");
    await new Promise((r) => setTimeout(r, 200));
    const members = (await c.zrange(`queue:${asker}:inbox`, 0, -1)).map((m) => JSON.parse(m));
    expect(members.map((m) => m.reply_to).sort()).toEqual(["py-1", "py-2"]);
  });

  it("a peer's error reply without reply_to (error_<id>, status error) fails the ask", async () => {
    const system = await newSystem();
    const peer = uniqueId("py-peer");
    const c = redis().client();
    const ask = system.ref(peer).ask("command", { command_id: "c1" }, { timeoutMs: ASK_TIMEOUT_MS });
    const settled = failure(ask);
    // The peer pops the request and answers as the guide's robust_handler does.
    const [member] = await waitForValue(
      async () => {
        const found = await c.zrange(`queue:${peer}:inbox`, 0, 0);
        return found.length > 0 ? found : null;
      },
      PROMPT_MS,
      "the request",
    );
    const request = JSON.parse(member as string);
    const now = Date.now() / 1000;
    const reply = {
      id: `error_${request.id}`,
      sender: peer,
      recipient: system.appId,
      message_type: "command_response",
      payload: { status: "error", message: "motors not armed" },
      priority: 2,
      timestamp: now,
    };
    await c.zadd(`queue:${system.appId}:inbox`, 2000 + now, JSON.stringify(reply));
    await c.publish(`channel:${system.appId}`, `new_message:${reply.id}`);
    const { err, ms } = await settled;
    expect(err).toMatchObject({ reason: "error", detail: "motors not armed", messageId: request.id });
    expect(ms).toBeLessThan(PROMPT_MS);
  });

  it("the CLI's ask prints the failure and exits 1 at once", async () => {
    const system = await newSystem();
    const app = uniqueId("worker");
    await system.spawn(worker(app));
    const main = fileURLToPath(new URL("../src/cli/main.ts", import.meta.url));
    const started = performance.now();
    const result = await runProcess(
      ["--import", "tsx", main, "ask", app, "work", '{"n": -3}', "--timeout", "30s"],
      {
        ...process.env,
        REDIS_URL: redis().url,
        REDACTOR_LOG_LEVEL: "error",
      },
    );
    expect(result.code).toBe(1);
    expect(result.stdout).toBe("");
    expect(result.stderr).toContain("the request failed (RangeError: n must not be negative, got -3)");
    expect(result.stderr).toContain("handler-error");
    expect(performance.now() - started).toBeLessThan(20_000);
  });
});
