/**
 * Least privileges: the README's ACL line is everything redactor needs. A system connected as
 * that user tells, asks, claims, announces its presence and lists who is online, with no
 * permission refused. Where the server publishes keyspace notifications but the user may not
 * subscribe to them, the refusal is logged and the sweep wakes actors instead; their own
 * channels are not lost with it.
 */
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { createSystem, defineActor, type SystemEvents } from "../src/index.js";
import { type TestRedis, uniqueId, useRedis } from "./harness/redis.js";
import { captureLogger, useSystems, waitFor } from "./harness/system.js";

const plain = useRedis();
const notifying = useRedis({ args: ["--notify-keyspace-events", "KEA"] });
const onPlain = useSystems(plain);
const onNotifying = useSystems(notifying);

/** The ACL line documented in the README ("ACL SETUSER redactor on >CHANGE-ME …"). */
function readmeAclLine(): string {
  const readme = readFileSync(new URL("../README.md", import.meta.url), "utf8");
  const line = readme.split("\n").find((l) => l.trim().startsWith("ACL SETUSER redactor "));
  if (!line) throw new Error("README.md has no line starting with `ACL SETUSER redactor `");
  return line.trim();
}

/** Creates a user from the README's line (plus `extra` rules); returns its URL. */
async function createUser(server: TestRedis, extra: string[] = []): Promise<string> {
  const user = uniqueId("acl");
  const password = uniqueId("pw");
  const args = readmeAclLine()
    .split(/\s+/)
    .slice(2)
    .map((arg, i) => (i === 0 ? user : arg === ">CHANGE-ME" ? `>${password}` : arg));
  await server.client().call("ACL", "SETUSER", ...args, ...extra);
  return `redis://${user}:${password}@${server.host}:${server.port}`;
}

type Echo = { echo: { payload: { n: number }; reply: { n: number } }; note: { payload: { n: number } } };

function noteTaker(id: string, seen: number[]) {
  return defineActor<Echo>({
    id,
    handlers: {
      echo: (p) => ({ n: p.n }),
      note: (p) => {
        seen.push(p.n);
      },
    },
  });
}

describe("least privileges", () => {
  it("runs tell, ask, claim, presence and listOnline as the README's ACL user", async () => {
    const url = await createUser(plain());
    const { logger, lines } = captureLogger();
    const refused: SystemEvents["subscription.refused"][] = [];
    const server = await onPlain({ redis: url, logger });
    server.events.on("subscription.refused", (e) => refused.push(e));
    const actor = uniqueId("acl-actor");
    const seen: number[] = [];
    await server.spawn(noteTaker(actor, seen));
    const client = await onPlain({ redis: url, logger });
    await client.ref<Echo>(actor).tell("note", { n: 1 });
    await waitFor(() => seen.length === 1, 5000, "the tell");
    expect(await client.ref<Echo>(actor).ask("echo", { n: 2 })).toEqual({ n: 2 });
    expect(await client.status(actor)).toMatchObject({ online: true, heartbeat: "alive" });
    expect(await client.listOnline()).toEqual(expect.arrayContaining([actor, server.appId, client.appId]));
    await server.stop(actor);
    expect((await client.status(actor))?.online).toBe(false);
    await server.shutdown();
    expect((await client.status(server.appId))?.online).toBe(false);
    expect(refused).toEqual([]);
    expect(lines.filter((l) => JSON.stringify(l).includes("NOPERM"))).toEqual([]);
  });

  it("schedules and cancels messages, runs durable timers and saves persisted state as the README's ACL user", async () => {
    const url = await createUser(plain());
    const { logger, lines } = captureLogger();
    const server = await onPlain({ redis: url, logger });
    const actor = uniqueId("acl-time");
    const seen: number[] = [];
    const ticks: string[] = [];
    await server.spawn(
      defineActor<Echo & { tick: { payload: Record<string, never> } }, { total: number }>({
        id: actor,
        persist: true,
        setup: async (ctx) => {
          await ctx.timers.start("t", "tick", {}, { everyMs: 100 });
          return ctx.saved ?? { total: 0 };
        },
        handlers: {
          echo: (p) => ({ n: p.n }),
          note: (p, ctx) => {
            ctx.state.total += p.n;
            seen.push(p.n);
          },
          tick: (_p, ctx) => {
            ticks.push(ctx.message.id);
          },
        },
      }),
    );
    const client = await onPlain({ redis: url, logger });
    const ref = client.ref<Echo>(actor);
    const cancelled = await ref.tell("note", { n: 100 }, { delayMs: 5000 });
    await ref.tell("note", { n: 1 }, { delayMs: 150 });
    expect(await client.cancel(cancelled, actor)).toBe(true);
    await waitFor(() => seen.length === 1 && ticks.length >= 2, 5000, "the scheduled tell and two ticks");
    expect(seen).toEqual([1]);
    await waitFor(
      async () => (await plain().client().hget(`state:${actor}`, "seq")) !== null,
      5000,
      "the saved state",
    );
    expect(lines.filter((l) => JSON.stringify(l).includes("NOPERM"))).toEqual([]);
  });

  it("falls back to the sweep when the keyspace channels are refused, and still handles tells", async () => {
    const url = await createUser(notifying());
    const { logger, lines } = captureLogger();
    const refused: SystemEvents["subscription.refused"][] = [];
    const server = await createSystem({ appId: uniqueId("acl-sys"), redis: url, logger, sweepMs: 200 });
    try {
      const actor = uniqueId("acl-ks-actor");
      const seen: number[] = [];
      await server.spawn(noteTaker(actor, seen));
      // Refused at start (the system's own inbox is watched first), and logged.
      const warned = () =>
        lines.some((l) => l.level === 40 && String(l.msg).includes("refused the keyspace notification"));
      await waitFor(warned, 3000, "the refusal to be logged");
      // A tell (published on the actor's own channel) is handled.
      const client = await onNotifying({ redis: url });
      await client.ref<Echo>(actor).tell("note", { n: 1 });
      await waitFor(() => seen.length === 1, 3000, "the tell");
      // A peer's bare ZADD, with no notification it may hear, is found by the sweep.
      const admin = notifying().client();
      const bare = {
        id: uniqueId("bare"),
        sender: "peer",
        recipient: actor,
        message_type: "note",
        payload: { n: 2 },
        priority: 2,
        timestamp: Date.now() / 1000,
        reply_to: null,
        timeout: null,
      };
      await admin.zadd(`queue:${actor}:inbox`, 2000 + bare.timestamp, JSON.stringify(bare));
      await waitFor(() => seen.length === 2, 3000, "the bare ZADD");
      // After a reconnect the keyspace channels are tried again, refused again, and reported.
      server.events.on("subscription.refused", (e) => refused.push(e));
      await admin.client("KILL", "USER", new URL(url).username);
      await waitFor(() => refused.length > 0, 5000, "the refusal after a reconnect");
      expect(refused[0]).toMatchObject({ channels: "keyspace" });
      await client.ref<Echo>(actor).tell("note", { n: 3 });
      await waitFor(() => seen.length === 3, 5000, "a tell after the reconnect");
    } finally {
      await server.shutdown();
    }
  });

  it("uses the keyspace channels when the user may subscribe to them", async () => {
    const url = await createUser(notifying(), ["&__keyspace@*__:queue:*"]);
    const refused: SystemEvents["subscription.refused"][] = [];
    // A long sweep: only a keyspace event can wake the actor for a bare ZADD in time.
    const server = await onNotifying({ redis: url, sweepMs: 60_000 });
    server.events.on("subscription.refused", (e) => refused.push(e));
    const actor = uniqueId("acl-ks-ok");
    const seen: number[] = [];
    await server.spawn(noteTaker(actor, seen));
    const bare = {
      id: uniqueId("bare"),
      sender: "peer",
      recipient: actor,
      message_type: "note",
      payload: { n: 1 },
      priority: 2,
      timestamp: Date.now() / 1000,
      reply_to: null,
      timeout: null,
    };
    await notifying()
      .client()
      .zadd(`queue:${actor}:inbox`, 2000 + bare.timestamp, JSON.stringify(bare));
    await waitFor(() => seen.length === 1, 3000, "the bare ZADD");
    expect(refused).toEqual([]);
  });
});
