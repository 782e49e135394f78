/**
 * The lifecycle machine is the single source of truth: every trail through it (each transition
 * used at most once, ending in a final status) is driven against real Redis through the
 * mailbox scripts, and after each step the status Redis holds is the machine's.
 */
import { getShortestPaths } from "@xstate/graph";
import { describe, expect, it } from "vitest";
import { newMessageId } from "../src/envelope.js";
import { Keyspace } from "../src/keyspace.js";
import {
  canTransition,
  isFinalStatus,
  LIFECYCLE_EVENTS,
  type LifecycleEvent,
  lifecycleMachine,
  MESSAGE_STATUSES,
  type MessageStatus,
  nextStatus,
} from "../src/lifecycle.js";
import { Mailbox, mailboxConfig } from "../src/mailbox.js";
import { Priority } from "../src/priority.js";
import { uniqueId, useRedis } from "./harness/redis.js";

const redis = useRedis();

/** Every trail from `pending` to a final status that uses no transition twice. */
function trails(): LifecycleEvent[][] {
  const out: LifecycleEvent[][] = [];
  const walk = (status: MessageStatus, path: LifecycleEvent[], used: Set<string>) => {
    if (isFinalStatus(status)) {
      out.push(path);
      return;
    }
    for (const event of LIFECYCLE_EVENTS) {
      const edge = `${status}:${event}`;
      if (!canTransition(status, event) || used.has(edge)) continue;
      walk(nextStatus(status, event), [...path, event], new Set([...used, edge]));
    }
  };
  walk("pending", [], new Set());
  return out;
}

describe("message lifecycle", () => {
  it("has the five wire statuses and the documented transitions", () => {
    expect(MESSAGE_STATUSES).toEqual(["pending", "processing", "completed", "failed", "timeout"]);
    expect(nextStatus("pending", "CLAIM")).toBe("processing");
    expect(nextStatus("processing", "RETRY")).toBe("pending");
    expect(() => nextStatus("completed", "CLAIM")).toThrow(/not allowed in status "completed"/);
    // Every state the graph library can reach is one of ours, and every final one is reachable.
    const reached = new Set(getShortestPaths(lifecycleMachine).map((p) => String(p.state.value)));
    expect([...reached].sort()).toEqual([...MESSAGE_STATUSES].sort());
  });

  const all = trails();
  it("covers every transition of the machine", () => {
    const edges = new Set<string>();
    for (const trail of all) {
      let status: MessageStatus = "pending";
      for (const event of trail) {
        edges.add(`${status}:${event}`);
        status = nextStatus(status, event);
      }
    }
    const expected = MESSAGE_STATUSES.flatMap((s) =>
      LIFECYCLE_EVENTS.filter((e) => canTransition(s, e)).map((e) => `${s}:${e}`),
    );
    expect([...edges].sort()).toEqual(expected.sort());
  });

  it.each(all.map((t) => [t.join(" → "), t] as const))("drives %s against Redis", async (_name, trail) => {
    const client = redis().client();
    const keys = new Keyspace();
    const mailbox = new Mailbox(client, keys, mailboxConfig());
    const tiny = new Mailbox(client, keys, mailboxConfig({ maxMessageBytes: 10 }));
    await mailbox.load();
    const app = uniqueId("life");
    const id = newMessageId();
    // A deadline 400 ms away: claims made at once are in time, an EXPIRE step waits for it.
    const sentAt = Date.now() / 1000 - 0.6;
    const encoded = mailbox.encode({
      id,
      sender: "tester",
      recipient: app,
      message_type: "t",
      payload: {},
      priority: Priority.NORMAL,
      timestamp: sentAt,
      reply_to: null,
      timeout: 1,
    });
    await mailbox.send([encoded]);
    const statusOf = () => client.hget(keys.message(app, id), "status");
    const where = async () => ({
      inbox: (await client.zscore(keys.inbox(app), encoded.member)) !== null,
      processing: (await client.zscore(keys.processing(app), encoded.member)) !== null,
    });
    let status: MessageStatus = "pending";
    expect(await statusOf()).toBe(status);
    let attempts = 0;
    for (const event of trail) {
      const token = "tok";
      const record = { id, member: Buffer.from(encoded.member), token, attempts };
      switch (`${status}:${event}`) {
        case "pending:CLAIM": {
          const claimed = await mailbox.claim(app, 1, token);
          expect(claimed.claimed.map((c) => c.member.toString())).toEqual([encoded.member]);
          attempts = (claimed.claimed[0]?.runsBefore ?? 0) + 1;
          break;
        }
        case "pending:EXPIRE": {
          await new Promise((r) => setTimeout(r, Math.max(0, (sentAt + 1) * 1000 - Date.now() + 20)));
          const claimed = await mailbox.claim(app, 1, token);
          expect(claimed.timedOut).toEqual([id]);
          expect(claimed.claimed).toEqual([]);
          break;
        }
        case "pending:REJECT": {
          const claimed = await tiny.claim(app, 1, token);
          expect(claimed.rejected).toBe(1);
          break;
        }
        case "processing:RETRY":
        case "processing:RELEASE":
          expect(
            (await mailbox.finish(app, [{ ...record, event: event as "RETRY", requeue: true }])).outcomes,
          ).toEqual(["written"]);
          break;
        default:
          expect(
            (
              await mailbox.finish(app, [
                { ...record, event: event as Exclude<LifecycleEvent, "CLAIM" | "REJECT"> },
              ])
            ).outcomes,
          ).toEqual(["written"]);
      }
      status = nextStatus(status, event);
      expect(await statusOf()).toBe(status);
      expect(await where()).toEqual({ inbox: status === "pending", processing: status === "processing" });
    }
    expect(isFinalStatus(status)).toBe(true);
    expect(await client.ttl(keys.message(app, id))).toBeGreaterThan(0);
  });

  it("refuses to write an outcome for a lease that is no longer ours", async () => {
    const client = redis().client();
    const keys = new Keyspace();
    const mailbox = new Mailbox(client, keys, mailboxConfig());
    const app = uniqueId("lease");
    const encoded = mailbox.encode({
      id: newMessageId(),
      sender: "t",
      recipient: app,
      message_type: "t",
      payload: {},
      priority: 2,
      timestamp: Date.now() / 1000,
      reply_to: null,
      timeout: null,
    });
    await mailbox.send([encoded]);
    await mailbox.claim(app, 1, "first");
    const id = encoded.envelope.id;
    expect(
      (
        await mailbox.finish(app, [
          { id, member: Buffer.from(encoded.member), token: "second", event: "COMPLETE", attempts: 1 },
        ])
      ).outcomes,
    ).toEqual(["lease-lost"]);
    expect(await client.hget(keys.message(app, id), "status")).toBe("processing");
  });
});
