/** Deadlines: a message whose timeout passed before it started never runs. */
import { expect, it } from "vitest";
import { AskTimeoutError, defineActor } from "../src/index.js";
import { describeBackends, MASTERS_ONLY, useBackendSystems } from "./harness/backends.js";
import { uniqueId } from "./harness/redis.js";
import { waitFor } from "./harness/system.js";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

type Cmd = {
  command: { payload: { name: string }; reply: { done: string } };
  slow: { payload: { ms: number } };
};

function commandActor(id: string, ran: string[]) {
  return defineActor<Cmd>({
    id,
    claimBatch: 10,
    handlers: {
      command: (p) => {
        ran.push(p.name);
        return { done: p.name };
      },
      slow: async (p) => {
        await sleep(p.ms);
      },
    },
  });
}

describeBackends(
  "deadlines",
  (backend) => {
    const newSystem = useBackendSystems(backend);

    it("never runs a takeoff whose deadline passed while nobody served the inbox", async () => {
      const app = uniqueId("fc");
      const system = await newSystem();
      const ref = system.ref<Cmd>(app);
      const stale = await ref.tell("command", { name: "takeoff" }, { timeoutMs: 1000 });
      const fresh = await ref.tell("command", { name: "status" });
      await sleep(1200);
      const ran: string[] = [];
      const timedOut: string[] = [];
      system.events.on("message.timeout", (e) => timedOut.push(e.id));
      await system.spawn(commandActor(app, ran));
      await waitFor(
        async () => (await system.messageStatus(fresh)) === "completed",
        5000,
        "the fresh message",
      );
      expect(ran).toEqual(["status"]);
      expect(await system.messageStatus(stale)).toBe("timeout");
      expect(timedOut).toEqual([stale]);
    });

    it("marks timeout a message claimed in time whose deadline passed while it waited behind a slow one", async () => {
      const app = uniqueId("fc");
      const system = await newSystem();
      const ran: string[] = [];
      const ref = system.ref<Cmd>(app);
      await ref.tell("slow", { ms: 1300 });
      const late = await ref.tell("command", { name: "takeoff" }, { timeoutMs: 1000 });
      // Both are claimed in one batch; the takeoff's turn comes after its deadline.
      await system.spawn(commandActor(app, ran));
      await waitFor(async () => (await system.messageStatus(late)) === "timeout", 5000, "timeout status");
      expect(ran).toEqual([]);
    });

    it("rejects an ask with a typed timeout and never executes the request afterwards", async () => {
      const app = uniqueId("fc");
      const system = await newSystem();
      const started = Date.now();
      const error = await system
        .ref<Cmd>(app)
        .ask("command", { name: "takeoff" }, { timeoutMs: 300 })
        .catch((e: unknown) => e);
      expect(Date.now() - started).toBeGreaterThanOrEqual(290);
      expect(error).toBeInstanceOf(AskTimeoutError);
      expect(error).toMatchObject({ recipient: app, messageType: "command", timeoutMs: 300 });
      const requestId = (error as AskTimeoutError).messageId;
      // The request carries the ask's deadline (whole seconds on the wire, rounded up).
      await sleep(1100);
      const ran: string[] = [];
      await system.spawn(commandActor(app, ran));
      await waitFor(
        async () => (await system.messageStatus(requestId)) === "timeout",
        5000,
        "timeout status",
      );
      expect(ran).toEqual([]);
    });

    it("drops a late reply without keeping anything for it", async () => {
      const app = uniqueId("slowfc");
      const system = await newSystem();
      let replied = false;
      await system.spawn(
        defineActor<Cmd>({
          id: app,
          handlers: {
            command: async (p) => {
              await sleep(400);
              replied = true;
              return { done: p.name };
            },
            slow: () => {},
          },
        }),
      );
      await expect(
        system.ref<Cmd>(app).ask("command", { name: "x" }, { timeoutMs: 150 }),
      ).rejects.toBeInstanceOf(AskTimeoutError);
      await waitFor(() => replied, 3000, "the late reply");
      const client = backend().client();
      const keys = backend().keys;
      await waitFor(
        async () => (await client.zcard(keys.inbox(system.appId))) === 0,
        3000,
        "the reply consumed",
      );
      const pending = (system as unknown as { asks: { size: number } }).asks.size;
      expect(pending).toBe(0);
      expect(await client.zcard(keys.dead(system.appId))).toBe(0);
      expect(await client.zcard(keys.processing(system.appId))).toBe(0);
    });
  },
  MASTERS_ONLY,
);
