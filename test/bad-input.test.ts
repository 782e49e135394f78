/**
 * Bad input never stops an actor and is never lost silently: each kind goes to
 * queue:<app>:dead with its reason, gets status failed where it has an id, is logged with the
 * message id, and the actor serves the next message.
 */
import { expect, it } from "vitest";
import { z } from "zod";
import { type ActorSystem, defineActor, MessageTooLargeError } from "../src/index.js";
import { describeBackends, MASTERS_ONLY, useBackendSystems } from "./harness/backends.js";
import { uniqueId } from "./harness/redis.js";
import { captureLogger, waitFor } from "./harness/system.js";

type Proto = {
  move: { payload: { altitude: number } };
  ping: { payload: { n: number } };
};

function wire(id: string | undefined, recipient: string, type: string, payload: unknown, extra = {}) {
  return JSON.stringify({
    id,
    sender: "peer",
    recipient,
    message_type: type,
    payload,
    priority: 2,
    timestamp: Date.now() / 1000,
    reply_to: null,
    timeout: null,
    ...extra,
  });
}

describeBackends(
  "bad input",
  (backend) => {
    const newSystem = useBackendSystems(backend);

    async function setup(options: { maxMessageBytes?: number } = {}) {
      const app = uniqueId("bad");
      const { logger, lines } = captureLogger();
      // A peer's bare ZADD wakes nobody (no PUBLISH, no keyspace notifications here): the sweep
      // finds it, and a short one keeps each test short.
      const system: ActorSystem = await newSystem({ logger, sweepMs: 100, ...options });
      const pings: number[] = [];
      await system.spawn(
        defineActor<Proto>({
          id: app,
          schemas: { move: z.object({ altitude: z.number().min(0).max(120) }) },
          handlers: {
            move: () => {},
            ping: (p) => {
              pings.push(p.n);
            },
          },
        }),
      );
      const peer = backend().client();
      const keys = backend().keys;
      const inbox = keys.inbox(app);
      const dead = async () =>
        (await peer.zrange(keys.dead(app), 0, -1)).map((m) => JSON.parse(m) as Record<string, unknown>);
      /** Sends a good ping after the bad input and waits for it: the actor kept serving. */
      const stillServing = async (n: number) => {
        await peer.zadd(inbox, 1, wire(uniqueId("ping"), app, "ping", { n }));
        await waitFor(() => pings.includes(n), 5000, `ping ${n}`);
      };
      return { app, system, peer, keys, inbox, dead, lines, stillServing };
    }

    it("dead-letters malformed JSON and keeps serving", async () => {
      const t = await setup();
      await t.peer.zadd(t.inbox, 3000, '{"id": "broken", "payload": ');
      await t.stillServing(1);
      expect(await t.dead()).toEqual([
        expect.objectContaining({ reason: "malformed", message: '{"id": "broken", "payload": ' }),
      ]);
      expect(t.lines.some((l) => String(l.msg).includes("dead letters") && l.count === 1)).toBe(true);
    });

    it("dead-letters a member that looks like redactor's own encoding but is not JSON", async () => {
      const t = await setup();
      const member = '{"id":"looks-fine", this is not JSON "timeout":null}';
      await t.peer.zadd(t.inbox, 3000, member);
      await t.stillServing(7);
      expect(await t.dead()).toEqual([expect.objectContaining({ reason: "malformed", message: member })]);
    });

    it("dead-letters a message whose envelope is wrong, naming the field", async () => {
      const t = await setup();
      const id = uniqueId("prio9");
      await t.peer.zadd(t.inbox, 3000, wire(id, t.app, "ping", { n: 0 }, { priority: 9 }));
      await t.stillServing(2);
      const [entry] = await t.dead();
      expect(entry).toMatchObject({ id, reason: "invalid-envelope" });
      expect(entry?.error).toMatch(/field "priority" must be an integer 1-4, got 9/);
      expect(await t.system.messageStatus(id)).toBe("failed");
      expect(t.lines.find((l) => l.msgId === id)).toMatchObject({ reason: "invalid-envelope", actor: t.app });
    });

    it("dead-letters an unknown message type", async () => {
      const t = await setup();
      const id = await t.system.ref(t.app).tell("fly_to_the_moon", {});
      await t.stillServing(3);
      const [entry] = await t.dead();
      expect(entry).toMatchObject({ id, reason: "unknown-type", attempts: 1 });
      expect(entry?.error).toMatch(/no handler for "fly_to_the_moon".*handles: move, ping/);
      expect(await t.system.messageStatus(id)).toBe("failed");
      expect(await t.peer.hget(t.keys.message(t.app, id), "error")).toMatch(/no handler/);
      expect(t.lines.find((l) => l.msgId === id)).toMatchObject({ reason: "unknown-type", level: 40 });
    });

    it("never takes a message type for a built-in property, and a throwing schema for a crash", async () => {
      const t = await setup();
      const ids: string[] = [];
      for (const type of ["constructor", "toString", "hasOwnProperty", "__proto__"]) {
        const id = uniqueId(type);
        ids.push(id);
        await t.peer.zadd(t.inbox, 3000, wire(id, t.app, type, {}));
      }
      await t.stillServing(8);
      const dead = await t.dead();
      expect(dead.map((d) => d.reason)).toEqual([
        "unknown-type",
        "unknown-type",
        "unknown-type",
        "unknown-type",
      ]);
      for (const id of ids) expect(await t.system.messageStatus(id)).toBe("failed");
    });

    it("dead-letters a payload whose schema throws, and runs the messages claimed with it", async () => {
      const app = uniqueId("throwing-schema");
      const system = await newSystem();
      const ran: number[] = [];
      const ref = system.ref<Proto>(app);
      const bad = await ref.tell("move", { altitude: 1 });
      await ref.tell("ping", { n: 1 });
      await ref.tell("ping", { n: 2 });
      await system.spawn(
        defineActor<Proto>({
          id: app,
          schemas: {
            move: {
              "~standard": {
                version: 1,
                vendor: "test",
                validate: () => {
                  throw new Error("schema bug");
                },
              },
            },
          },
          handlers: {
            move: () => {},
            ping: (p) => {
              ran.push(p.n);
            },
          },
        }),
      );
      await waitFor(() => ran.length === 2, 3000, "the good messages");
      expect(await system.messageStatus(bad)).toBe("failed");
      const [entry] = await backend().client().zrange(backend().keys.dead(app), 0, -1);
      expect(JSON.parse(entry as string)).toMatchObject({ id: bad, reason: "invalid-payload" });
      expect(JSON.parse(entry as string).error).toMatch(/the schema itself threw: schema bug/);
    });

    it("dead-letters a payload that fails its schema", async () => {
      const t = await setup();
      const id = await t.system.ref<Proto>(t.app).tell("move", { altitude: 500 });
      await t.stillServing(4);
      const [entry] = await t.dead();
      expect(entry).toMatchObject({ id, reason: "invalid-payload" });
      expect(entry?.error).toMatch(/altitude:/);
      expect(await t.system.messageStatus(id)).toBe("failed");
    });

    it("dead-letters an incoming message over the size limit, and tell refuses to send one", async () => {
      const t = await setup({ maxMessageBytes: 4096 });
      const id = uniqueId("huge");
      await t.peer.zadd(t.inbox, 3000, wire(id, t.app, "ping", { blob: "x".repeat(10_000) }));
      await t.stillServing(5);
      const [entry] = await t.dead();
      expect(entry).toMatchObject({ id, reason: "oversize" });
      expect(JSON.parse(String(entry?.message)).id).toBe(id);
      expect(await t.system.messageStatus(id)).toBe("failed");
      await expect(t.system.ref(t.app).tell("ping", { blob: "y".repeat(5000) })).rejects.toBeInstanceOf(
        MessageTooLargeError,
      );
      await expect(t.system.ref(t.app).tell("ping", { blob: "é".repeat(2100) })).rejects.toThrow(
        /over the 4096-byte limit/,
      );
    });

    it("dead-letters a message without an id and keeps it readable", async () => {
      const t = await setup();
      await t.peer.zadd(t.inbox, 3000, wire(undefined, t.app, "ping", { n: 0 }));
      await t.stillServing(6);
      expect(await t.dead()).toEqual([
        expect.objectContaining({
          reason: "malformed",
          error: expect.stringContaining('field "id" is missing'),
        }),
      ]);
    });

    it("records a handler's exception on the message and keeps serving", async () => {
      const app = uniqueId("throws");
      const system = await newSystem();
      const seen: number[] = [];
      await system.spawn(
        defineActor<{ n: { payload: { n: number } } }>({
          id: app,
          maxAttempts: 1,
          onFailure: "resume",
          handlers: {
            n: (p) => {
              if (p.n === 1) throw new RangeError("n must not be 1");
              seen.push(p.n);
            },
          },
        }),
      );
      const ref = system.ref<{ n: { payload: { n: number } } }>(app);
      const bad = await ref.tell("n", { n: 1 });
      await ref.tell("n", { n: 2 });
      await waitFor(() => seen.includes(2), 5000, "the next message");
      expect(await system.messageStatus(bad)).toBe("failed");
      const dead = await backend().client().zrange(backend().keys.dead(app), 0, -1);
      expect(JSON.parse(dead[0] as string)).toMatchObject({
        id: bad,
        reason: "handler-error",
        error: "RangeError: n must not be 1",
      });
    });
  },
  MASTERS_ONLY,
);
