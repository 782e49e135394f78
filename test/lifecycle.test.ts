/**
 * The lifecycle machine is the single source of truth: every trail through it (each transition
 * used at most once, ending in a final status) is driven against real Redis through the
 * mailbox scripts, and after each step the status Redis holds is the machine's.
 */
import { getShortestPaths } from "@xstate/graph";
import { pino } from "pino";
import { describe, expect, it } from "vitest";
import { realTime } from "../src/clock.js";
import { newMessageId } from "../src/envelope.js";
import { Keyspace } from "../src/keyspace.js";
import {
  canTransition,
  ENTRY_STATUSES,
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
import { Scheduler } from "../src/scheduler.js";
import { uniqueId, useRedis } from "./harness/redis.js";

const redis = useRedis();

/**
 * Every trail from an entry status (`pending`, or `scheduled` for a message sent for later) to a
 * final status that uses no transition twice; each trail starts with its entry status.
 */
function trails(): [MessageStatus, ...LifecycleEvent[]][] {
  const out: [MessageStatus, ...LifecycleEvent[]][] = [];
  let entry: MessageStatus = "pending";
  const walk = (status: MessageStatus, path: LifecycleEvent[], used: Set<string>) => {
    if (isFinalStatus(status)) {
      out.push([entry, ...path]);
      return;
    }
    for (const event of LIFECYCLE_EVENTS) {
      const edge = `${status}:${event}`;
      if (!canTransition(status, event) || used.has(edge)) continue;
      walk(nextStatus(status, event), [...path, event], new Set([...used, edge]));
    }
  };
  for (const start of ENTRY_STATUSES) {
    entry = start;
    walk(start, [], new Set());
  }
  return out;
}

describe("message lifecycle", () => {
  it("has the five wire statuses and the documented transitions", () => {
    expect(MESSAGE_STATUSES).toEqual([
      "pending",
      "processing",
      "completed",
      "failed",
      "timeout",
      "scheduled",
      "cancelled",
    ]);
    expect(ENTRY_STATUSES).toEqual(["pending", "scheduled"]);
    expect(nextStatus("scheduled", "DUE")).toBe("pending");
    expect(nextStatus("scheduled", "CANCEL")).toBe("cancelled");
    expect(() => nextStatus("pending", "CANCEL")).toThrow(/not allowed in status "pending"/);
    expect(nextStatus("pending", "CLAIM")).toBe("processing");
    expect(nextStatus("processing", "RETRY")).toBe("pending");
    expect(() => nextStatus("completed", "CLAIM")).toThrow(/not allowed in status "completed"/);
    // Every state the graph library can reach from the initial one is one of ours; the rest are
    // reached from the other entry status (a scheduled message).
    const reached = new Set(getShortestPaths(lifecycleMachine).map((p) => String(p.state.value)));
    for (const trail of trails()) {
      let status = trail[0];
      reached.add(status);
      for (const event of trail.slice(1) as LifecycleEvent[]) {
        status = nextStatus(status, event);
        reached.add(status);
      }
    }
    expect([...reached].sort()).toEqual([...MESSAGE_STATUSES].sort());
  });

  const all = trails();
  it("covers every transition of the machine", () => {
    const edges = new Set<string>();
    for (const [entry, ...trail] of all) {
      let status: MessageStatus = entry;
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

  it.each(all.map((t) => [t.join(" → "), t] as const))("drives %s against Redis", async (_name, path) => {
    const [entry, ...trail] = path;
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
    const scheduler = new Scheduler({
      redis: client,
      keys,
      clock: realTime(),
      redisNowMs: Date.now,
      messageTtlSeconds: mailbox.config.messageTtlSeconds,
      pollMs: 1000,
      log: pino({ level: "silent" }),
    });
    // A scheduled message is due at once (its due time is its timestamp, already past).
    if (entry === "scheduled") await mailbox.schedule(encoded, Math.ceil(sentAt * 1000));
    else await mailbox.send([encoded]);
    const statusOf = () => client.hget(keys.message(app, id), "status");
    const where = async () => ({
      inbox: (await client.zscore(keys.inbox(app), encoded.member)) !== null,
      processing: (await client.zscore(keys.processing(app), encoded.member)) !== null,
    });
    let status: MessageStatus = entry;
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
        case "scheduled:DUE":
          expect((await scheduler.promote(app)).moved).toBe(1);
          break;
        case "scheduled:CANCEL":
          expect(await scheduler.cancel(app, id)).toBe("cancelled");
          break;
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
                { ...record, event: event as Exclude<LifecycleEvent, "CLAIM" | "REJECT" | "DUE" | "CANCEL"> },
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
