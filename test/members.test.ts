/**
 * A member is an opaque byte string with one reading: whatever bytes or numbers it holds, no
 * script stops on it, no path alters it, and every path reads the same id. Each kind of member
 * that once stopped an actor, ran for ever, or ran twice has a test here; test/fuzz.test.ts
 * tries the kinds nobody listed.
 */
import { describe, expect, it } from "vitest";
import { newMessageId } from "../src/envelope.js";
import { type ActorSystem, defineActor, Priority } from "../src/index.js";
import { Keyspace } from "../src/keyspace.js";
import { Mailbox, mailboxConfig } from "../src/mailbox.js";
import { uniqueId, useRedis } from "./harness/redis.js";
import { useSystems, waitFor } from "./harness/system.js";

const redis = useRedis();
const newSystem = useSystems(redis);

type Rec = { rec: { payload: { tag: string } } };

/** A message in the peers' shape, with fields overridden as given (raw JSON text pieces allowed). */
function peerJson(app: string, fields: Record<string, unknown> = {}): string {
  return JSON.stringify({
    id: newMessageId(),
    sender: "peer",
    recipient: app,
    message_type: "rec",
    payload: { tag: "x" },
    priority: 2,
    timestamp: Date.now() / 1000,
    reply_to: null,
    timeout: null,
    ...fields,
  });
}

/** An actor that records the tags it ran, and how often each id ran. */
async function recorder(system: ActorSystem, app: string, options: { claimBatch?: number } = {}) {
  const tags: string[] = [];
  const runs = new Map<string, number>();
  await system.spawn(
    defineActor<Rec>({
      id: app,
      claimBatch: options.claimBatch,
      handlers: {
        rec: (p, ctx) => {
          tags.push(p.tag);
          runs.set(ctx.message.id, (runs.get(ctx.message.id) ?? 0) + 1);
        },
      },
    }),
  );
  return { tags, runs };
}

async function deadEntries(app: string): Promise<Record<string, unknown>[]> {
  return (await redis().client().zrange(`queue:${app}:dead`, 0, -1)).map((e) => JSON.parse(e));
}

/** How many script calls failed on the server so far (INFO commandstats). */
async function scriptErrors(): Promise<number> {
  const info = await redis().client().info("commandstats");
  let failed = 0;
  for (const line of info.split("\n")) {
    if (!/^cmdstat_(eval|evalsha|evalsha_ro|eval_ro|fcall):/.test(line)) continue;
    failed += Number(/failed_calls=(\d+)/.exec(line)?.[1] ?? 0);
  }
  return failed;
}

describe("members with non-finite numbers", () => {
  for (const bad of ['"nan"', '"inf"', '"-inf"', '"1e400"', '"0x10"', "1e400", "-1e400", "2.5", '"4"']) {
    it(`a priority of ${bad} never stops the actor; the member is dead-lettered with a reason`, async () => {
      const app = uniqueId("nan");
      const system = await newSystem();
      const peer = redis().client();
      const poisoned = peerJson(app, { priority: "__P__" }).replace('"__P__"', bad);
      const id = JSON.parse(poisoned.replace(bad, "2")).id as string;
      await peer.zadd(`queue:${app}:inbox`, 3000, poisoned);
      const errorsBefore = await scriptErrors();
      for (let i = 0; i < 20; i++)
        await peer.zadd(`queue:${app}:inbox`, 2000 + i, peerJson(app, { payload: { tag: `v${i}` } }));
      const { tags } = await recorder(system, app);
      await waitFor(() => tags.length >= 20, 10_000, "the 20 valid messages");
      await waitFor(async () => (await system.messageStatus(id)) === "failed", 5000, "the bad member failed");
      // 1e400 reads as Infinity everywhere: no integer priority, so refused like the rest.
      const dead = await deadEntries(app);
      expect(dead).toHaveLength(1);
      expect(dead[0]).toMatchObject({ id, reason: "invalid-envelope" });
      expect(await scriptErrors()).toBe(errorsBefore);
    });
  }

  it("a batch holding such members is handed back whole: nothing vanishes", async () => {
    const client = redis().client();
    const keys = new Keyspace();
    const mailbox = new Mailbox(client, keys, mailboxConfig());
    await mailbox.load();
    const app = uniqueId("handback");
    const members = [
      peerJson(app, { priority: "nan" }),
      peerJson(app, { timestamp: "inf" }),
      peerJson(app, { timestamp: 1e300 }),
      ...Array.from({ length: 6 }, () => peerJson(app)),
    ];
    for (const [i, m] of members.entries()) await client.zadd(keys.inbox(app), i, m);
    const claimed = await mailbox.claim(app, 64, "holder/1");
    expect(claimed.claimed).toHaveLength(members.length);
    const { outcomes } = await mailbox.finish(
      app,
      claimed.claimed.map((c) => ({
        id: c.id,
        member: c.member,
        token: "holder/1",
        event: "RELEASE" as const,
        attempts: c.runsBefore,
        giveBack: c.counted,
        requeue: true,
      })),
    );
    expect(outcomes.every((o) => o === "written")).toBe(true);
    expect(await client.zcard(keys.inbox(app))).toBe(members.length);
    expect(await client.zcard(keys.processing(app))).toBe(0);
    const scores = (await client.zrange(keys.inbox(app), 0, -1, "WITHSCORES")).filter((_, i) => i % 2 === 1);
    expect(scores.every((s) => Number.isFinite(Number(s)))).toBe(true);
  });

  it("numbers as Python's json.dumps writes them (1e-07, 3.2e-05, -0.0, 1e+22) run", async () => {
    const app = uniqueId("pyfloat");
    const system = await newSystem();
    const peer = redis().client();
    const member = peerJson(app, { payload: { tag: "__T__" } }).replace(
      '"__T__"',
      '"py","drift":1e-07,"v":3.2e-05,"z":-0.0,"big":1e+22',
    );
    await peer.zadd(`queue:${app}:inbox`, 2000, member);
    const { tags } = await recorder(system, app);
    await waitFor(() => tags.length === 1, 5000, "the run");
    expect(await deadEntries(app)).toEqual([]);
  });

  it("scores of ±inf are re-scored and run", async () => {
    const app = uniqueId("inf-score");
    const system = await newSystem();
    const peer = redis().client();
    await peer.zadd(`queue:${app}:inbox`, "+inf", peerJson(app, { payload: { tag: "plus" } }));
    await peer.zadd(`queue:${app}:inbox`, "-inf", peerJson(app, { payload: { tag: "minus" } }));
    const { tags } = await recorder(system, app);
    await waitFor(() => tags.length >= 2, 5000, "both");
    expect(tags.sort()).toEqual(["minus", "plus"]);
  });
});

describe("bytes are preserved", () => {
  it("a payload with the byte 0xFF runs once and leaves nothing behind", async () => {
    const app = uniqueId("ff");
    const system = await newSystem({ leaseMs: 1000 });
    const id = newMessageId();
    const text = peerJson(app, { id, payload: { tag: "__BYTES__" } });
    const [head, tail] = text.split("__BYTES__") as [string, string];
    const member = Buffer.concat([
      Buffer.from(head),
      Buffer.from([0x61, 0xff, 0xfe, 0x62]),
      Buffer.from(tail),
    ]);
    const peer = redis().client();
    await peer.zadd(`queue:${app}:inbox`, 2000, member);
    const { runs } = await recorder(system, app);
    await waitFor(() => runs.get(id) === 1, 5000, "the run");
    await waitFor(async () => (await system.messageStatus(id)) === "completed", 5000, "completed");
    // Several lease periods: a member handed back altered would run again, or dead-letter.
    await new Promise((r) => setTimeout(r, 2500));
    expect(runs.get(id)).toBe(1);
    expect(await peer.zcard(`queue:${app}:processing`)).toBe(0);
    expect(await deadEntries(app)).toEqual([]);
  });

  it("a dead-lettered member that is not UTF-8 is kept byte for byte", async () => {
    const app = uniqueId("ff-dead");
    const system = await newSystem();
    const member = Buffer.from([0x7b, 0xff, 0x7d]); // "{\xff}": not JSON
    await redis().client().zadd(`queue:${app}:inbox`, 2000, member);
    await recorder(system, app);
    await waitFor(async () => (await deadEntries(app)).length === 1, 5000, "the dead letter");
    const [entry] = await deadEntries(app);
    expect(entry).toMatchObject({ reason: "malformed", message_hex: "7bff7d" });
  });

  for (const how of ["tell with timeoutMs", "peer with a timeout", "ask"] as const) {
    it(`a lone surrogate escape in the payload runs (${how})`, async () => {
      const app = uniqueId("surrogate");
      const system = await newSystem();
      const lone = "a\ud83db";
      const seen: string[] = [];
      await system.spawn(
        defineActor<{ rec: { payload: { tag: string }; reply: { ok: boolean } } }>({
          id: app,
          handlers: {
            rec: (p) => {
              seen.push(p.tag);
              return { ok: true };
            },
          },
        }),
      );
      const ref = system.ref<{ rec: { payload: { tag: string }; reply: { ok: boolean } } }>(app);
      let id: string;
      if (how === "tell with timeoutMs") id = await ref.tell("rec", { tag: lone }, { timeoutMs: 5000 });
      else if (how === "ask") {
        expect(await ref.ask("rec", { tag: lone }, { timeoutMs: 5000 })).toEqual({ ok: true });
        id = "";
      } else {
        id = newMessageId();
        const member = peerJson(app, { id, payload: { tag: lone }, timeout: 30 });
        expect(member).toContain("\\ud83d");
        await redis().client().zadd(`queue:${app}:inbox`, 2000, member);
        await redis().client().publish(`channel:${app}`, `new_message:${id}`);
      }
      await waitFor(() => seen.length === 1, 5000, "the run");
      expect(seen[0]).toBe(lone);
      if (id) await waitFor(async () => (await system.messageStatus(id)) === "completed", 5000, "completed");
      expect(await deadEntries(app)).toEqual([]);
    });
  }
});

describe("one id per member", () => {
  for (const key of ['"id"', '"\\u0069d"']) {
    it(`a member with a second id key (${key}) is read with the last one, as JSON.parse does; the genuine message runs`, async () => {
      const app = uniqueId("dup-key");
      const system = await newSystem();
      const ref = system.ref<Rec>(app);
      const genuine = await ref.tell("rec", { tag: "genuine" });
      const other = newMessageId();
      // The first "id" is a real pending id, the last another one; the member otherwise looks
      // like redactor's own encoding (it starts with the id and ends with a null timeout).
      // HIGH: it runs before the genuine message.
      const forged = peerJson(app, { id: genuine, payload: { tag: "forged" }, priority: 3 }).replace(
        `{"id":${JSON.stringify(genuine)},`,
        `{"id":${JSON.stringify(genuine)},${key}:${JSON.stringify(other)},`,
      );
      expect(forged.endsWith('"timeout":null}')).toBe(true);
      await redis().client().zadd(`queue:${app}:inbox`, "+inf", forged);
      // One message per claim: the genuine message is claimed after the forged one finished.
      const { tags, runs } = await recorder(system, app, { claimBatch: 1 });
      await waitFor(() => tags.length >= 2, 5000, "both");
      await new Promise((r) => setTimeout(r, 300));
      expect(tags.sort()).toEqual(["forged", "genuine"]);
      expect(runs.get(genuine)).toBe(1);
      expect(runs.get(other)).toBe(1);
      expect(await system.messageStatus(genuine)).toBe("completed");
    });
  }

  it("an oversize member with only a nested id marks no id failed", async () => {
    const app = uniqueId("nested-id");
    const system = await newSystem({ maxMessageBytes: 2000 });
    const ref = system.ref<Rec>(app);
    const victim = await ref.tell("rec", { tag: "victim" });
    const member = JSON.stringify({ sender: "peer", payload: { id: victim, pad: "x".repeat(3000) } });
    await redis().client().zadd(`queue:${app}:inbox`, "+inf", member);
    const { tags } = await recorder(system, app);
    await waitFor(() => tags.includes("victim"), 5000, "the victim to run");
    expect(await system.messageStatus(victim)).toBe("completed");
    const dead = await deadEntries(app);
    expect(dead).toHaveLength(1);
    expect(dead[0]).toMatchObject({ reason: "oversize" });
    expect(dead[0]?.id).toBeUndefined();
  });

  it("two members with the same id in one claimed batch run once", async () => {
    const app = uniqueId("same-id");
    const system = await newSystem();
    const id = newMessageId();
    const peer = redis().client();
    await peer.zadd(`queue:${app}:inbox`, 2000, peerJson(app, { id, payload: { tag: "a" } }));
    await peer.zadd(`queue:${app}:inbox`, 2001, peerJson(app, { id, payload: { tag: "b" }, priority: 3 }));
    const { tags, runs } = await recorder(system, app);
    await waitFor(() => tags.length >= 1, 5000, "a run");
    await new Promise((r) => setTimeout(r, 500));
    expect(runs.get(id)).toBe(1);
    expect(await peer.zcard(`queue:${app}:inbox`)).toBe(0);
  });

  it("a duplicate of an id in flight under another lease does not run beside it", async () => {
    const app = uniqueId("in-flight");
    const system = await newSystem();
    let running = 0;
    let overlapped = false;
    const id = newMessageId();
    await system.spawn(
      defineActor<Rec>({
        id: app,
        handlers: {
          rec: async () => {
            running += 1;
            if (running > 1) overlapped = true;
            await new Promise((r) => setTimeout(r, 300));
            running -= 1;
          },
        },
      }),
    );
    const other = await newSystem();
    await other.spawn(defineActor<Rec>({ id: app, handlers: { rec: async () => {} } }));
    const peer = redis().client();
    await peer.zadd(`queue:${app}:inbox`, 2000, peerJson(app, { id }));
    await peer.publish(`channel:${app}`, `new_message:${id}`);
    await new Promise((r) => setTimeout(r, 50));
    await peer.zadd(`queue:${app}:inbox`, 2000, peerJson(app, { id, priority: Priority.HIGH }));
    await peer.publish(`channel:${app}`, `new_message:${id}`);
    await waitFor(async () => (await system.messageStatus(id)) === "completed", 5000, "completed");
    expect(overlapped).toBe(false);
  });
});
