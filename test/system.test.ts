/** The system: connecting, spawning, stopping, disposal, message status. */
import { pino } from "pino";
import { describe, expect, it } from "vitest";
import {
  createSystem,
  DuplicateActorError,
  defineActor,
  RedisUnavailableError,
  SystemStoppedError,
  supervisor,
} from "../src/index.js";
import { freePort, uniqueId, useRedis } from "./harness/redis.js";
import { useSystems, waitFor } from "./harness/system.js";

const redis = useRedis();
const newSystem = useSystems(redis);
const silent = pino({ level: "silent" });

describe("system", () => {
  it("fails fast with a clear error when Redis is not there", async () => {
    const port = await freePort();
    const error = await createSystem({
      appId: "x",
      redis: `redis://127.0.0.1:${port}`,
      logger: silent,
    }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RedisUnavailableError);
    expect((error as Error).message).toMatch(
      new RegExp(`cannot reach Redis at redis://127.0.0.1:${port}.*REDIS_URL`),
    );
  });

  it("is disposable with await using, which shuts it down", async () => {
    const app = uniqueId("disposable");
    let appId = "";
    {
      await using system = await createSystem({ appId: uniqueId("sys"), redis: redis().url, logger: silent });
      appId = system.appId;
      await system.spawn(defineActor({ id: app, handlers: {} }));
    }
    const client = redis().client();
    expect(await client.hget(`status:${app}`, "status")).toBe("offline");
    expect(await client.hget(`status:${appId}`, "status")).toBe("offline");
  });

  it("refuses a second actor with the same id, and work after shutdown", async () => {
    const system = await newSystem();
    const app = uniqueId("dup");
    await system.spawn(defineActor({ id: app, handlers: {} }));
    await expect(system.spawn(defineActor({ id: app, handlers: {} }))).rejects.toBeInstanceOf(
      DuplicateActorError,
    );
    await system.shutdown();
    await expect(system.ref(app).tell("x", {})).rejects.toBeInstanceOf(SystemStoppedError);
  });

  it("reports message status through the lifecycle, like get_message_status", async () => {
    const system = await newSystem();
    const app = uniqueId("status");
    let release: () => void = () => {};
    const gate = new Promise<void>((r) => {
      release = r;
    });
    const id = await system.ref(app).tell("work", {});
    expect(await system.messageStatus(id)).toBe("pending");
    await system.spawn(
      defineActor<{ work: { payload: object } }>({ id: app, handlers: { work: () => gate } }),
    );
    await waitFor(async () => (await system.messageStatus(id)) === "processing", 2000, "processing");
    release();
    await waitFor(async () => (await system.messageStatus(id)) === "completed", 2000, "completed");
    expect(await system.messageStatus("no-such-id")).toBeNull();
  });

  it("runs setup per incarnation and gives handlers their context", async () => {
    const system = await newSystem();
    const app = uniqueId("ctx");
    const seen: unknown[] = [];
    await system.spawn(
      defineActor<{ hit: { payload: { n: number } } }, { hits: number }>({
        id: app,
        setup: (ctx) => {
          expect(ctx.self.id).toBe(app);
          return { hits: 0 };
        },
        handlers: {
          hit: (p, ctx) => {
            ctx.state.hits += p.n;
            seen.push({
              hits: ctx.state.hits,
              self: ctx.self.id,
              sender: ctx.message.sender,
              sys: ctx.system.appId,
            });
            ctx.log.info("hit");
          },
        },
      }),
    );
    await system.ref(app).tell("hit", { n: 2 });
    await system.ref(app).tell("hit", { n: 3 });
    await waitFor(() => seen.length === 2, 2000, "two hits");
    expect(seen[1]).toEqual({ hits: 5, self: app, sender: system.appId, sys: system.appId });
  });

  it("sends as the actor from ctx.ref, as the system from system.ref", async () => {
    const system = await newSystem();
    const a = uniqueId("a");
    const b = uniqueId("b");
    const senders: string[] = [];
    await system.spawn(
      defineActor<{ go: { payload: object } }>({
        id: a,
        handlers: {
          go: async (_p, ctx) => {
            await ctx.ref(b).tell("note", {});
          },
        },
      }),
    );
    await system.spawn(
      defineActor<{ note: { payload: object } }>({
        id: b,
        handlers: {
          note: (_p, ctx) => {
            senders.push(ctx.message.sender);
          },
        },
      }),
    );
    await system.ref(a).tell("go", {});
    await waitFor(() => senders.length === 1, 2000, "the note");
    expect(senders).toEqual([a]);
  });

  it("starts a supervisor's children in order and stops them in reverse", async () => {
    const system = await newSystem();
    const order: string[] = [];
    const child = (id: string) =>
      defineActor({
        id,
        setup: () => {
          order.push(`start:${id}`);
        },
        handlers: {},
      });
    const [x, y, z] = [uniqueId("x"), uniqueId("y"), uniqueId("z")];
    const sup = await system.spawn(
      supervisor({
        id: "root",
        children: [child(x), supervisor({ id: "inner", children: [child(y)] }), child(z)],
      }),
    );
    expect(order).toEqual([`start:${x}`, `start:${y}`, `start:${z}`]);
    expect(sup.actorIds).toEqual([x, y, z]);
    system.events.on("actor.stopped", (e) => order.push(`stop:${e.actor}`));
    await sup.stop();
    expect(order.slice(3)).toEqual([`stop:${z}`, `stop:${y}`, `stop:${x}`]);
  });
});

describe("duplicate ids", () => {
  const redis2 = useRedis();
  const newSystem2 = useSystems(redis2);

  it("runs an id once, whether sent twice in one batch, while pending, or after it completed", async () => {
    const system = await newSystem2();
    const app = uniqueId("dedupe");
    const runs: string[] = [];
    const sent: string[] = [];
    system.events.on("message.sent", (e) => sent.push(e.id));
    const ref = system.ref<{ job: { payload: { n: number } } }>(app);
    // Same tick: one script call carries both.
    await Promise.all([
      ref.tell("job", { n: 1 }, { id: "same-a" }),
      ref.tell("job", { n: 2 }, { id: "same-a" }),
    ]);
    await ref.tell("job", { n: 3 }, { id: "same-b" });
    await ref.tell("job", { n: 4 }, { id: "same-b" });
    expect(sent).toEqual(["same-a", "same-b"]);
    await system.spawn(
      defineActor<{ job: { payload: { n: number } } }>({
        id: app,
        handlers: {
          job: (p, ctx) => {
            runs.push(`${ctx.message.id}:${p.n}`);
          },
        },
      }),
    );
    await waitFor(() => runs.length === 2, 2000, "two runs");
    await waitFor(async () => (await system.messageStatus("same-b")) === "completed", 2000, "completed");
    await ref.tell("job", { n: 5 }, { id: "same-b" });
    await new Promise((r) => setTimeout(r, 200));
    expect(runs).toEqual(["same-a:1", "same-b:3"]);
  });

  it("starts a new lifecycle, attempts from zero, when a failed id is sent again", async () => {
    const system = await newSystem2();
    const app = uniqueId("resend");
    let fail = true;
    const attempts: number[] = [];
    await system.spawn(
      defineActor<{ job: { payload: object } }>({
        id: app,
        maxAttempts: 1,
        onFailure: "resume",
        handlers: {
          job: (_p, ctx) => {
            attempts.push(ctx.attempt);
            if (fail) throw new Error("not yet");
          },
        },
      }),
    );
    const ref = system.ref(app);
    await ref.tell("job", {}, { id: "again" });
    await waitFor(async () => (await system.messageStatus("again")) === "failed", 2000, "failed");
    fail = false;
    await ref.tell("job", {}, { id: "again" });
    await waitFor(async () => (await system.messageStatus("again")) === "completed", 2000, "completed");
    expect(attempts).toEqual([1, 1]);
  });
});

describe("fallback handler", () => {
  const redis5 = useRedis();
  const newSystem5 = useSystems(redis5);

  it("takes every type without a handler of its own, and its return value is the reply", async () => {
    const system = await newSystem5();
    const app = uniqueId("catch-all");
    const seen: string[] = [];
    await system.spawn(
      defineActor<{ known: { payload: object } }>({
        id: app,
        handlers: { known: () => {} },
        fallback: (payload, ctx) => {
          seen.push(ctx.message.message_type);
          return { echoed: payload };
        },
      }),
    );
    await system.ref(app).tell("anything", {});
    await expect(system.ref(app).ask("whatever", { x: 1 })).resolves.toEqual({ echoed: { x: 1 } });
    await waitFor(() => seen.length === 2, 2000, "two fallbacks");
    expect(seen).toEqual(["anything", "whatever"]);
  });
});
