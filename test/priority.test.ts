/**
 * Order: strict priority (CRITICAL first), then the order messages were sent in, whichever
 * program sent them and whatever score it wrote.
 */
import { describe, expect, it } from "vitest";
import { type ActorSystem, defineActor, Priority } from "../src/index.js";
import { canonicalScore, SCORE_BASE } from "../src/priority.js";
import { describeBackends, MASTERS_ONLY, useBackendSystems } from "./harness/backends.js";
import { uniqueId } from "./harness/redis.js";
import { waitFor } from "./harness/system.js";

type Rec = { rec: { payload: { tag: string } } };

/** Spawns a recorder for `id` and waits until it has handled `count` messages. */
async function record(system: ActorSystem, id: string, count: number): Promise<string[]> {
  const seen: string[] = [];
  await system.spawn(
    defineActor<Rec>({
      id,
      claimBatch: 7,
      handlers: {
        rec: (p) => {
          seen.push(p.tag);
        },
      },
    }),
  );
  await waitFor(() => seen.length >= count, 10_000, `${count} messages`);
  return seen;
}

function peerMessage(id: string, recipient: string, tag: string, priority: number, timestamp: number) {
  return JSON.stringify({
    id,
    sender: "peer",
    recipient,
    message_type: "rec",
    payload: { tag },
    priority,
    timestamp,
    reply_to: null,
    timeout: null,
  });
}

describeBackends(
  "priority and order",
  (backend) => {
    const newSystem = useBackendSystems(backend);

    it.each([
      ["announced", true],
      ["not yet announced (sent with the peers' score, fixed at claim)", false],
    ])(
      "runs CRITICAL first and FIFO within a priority, for a burst sent in one millisecond: inbox %s",
      async (_, announced) => {
        const app = uniqueId("prio");
        const sender = await newSystem();
        // A running actor announces its inbox as a redactor inbox; before that, senders use the peers' score.
        if (announced) await backend().client().hset(backend().keys.status(app), "ordering", "fifo-v1");
        const ref = sender.ref<Rec>(app);
        const sent: { tag: string; priority: Priority }[] = [];
        const priorities = [Priority.NORMAL, Priority.LOW, Priority.CRITICAL, Priority.HIGH];
        for (let i = 0; i < 400; i++) sent.push({ tag: `m${i}`, priority: priorities[i % 4] as Priority });
        // All sends start in the same tick: most of them share a millisecond.
        await Promise.all(sent.map((m) => ref.tell("rec", { tag: m.tag }, { priority: m.priority })));
        const seen = await record(await newSystem(), app, sent.length);
        const expected = [4, 3, 2, 1].flatMap((p) => sent.filter((m) => m.priority === p).map((m) => m.tag));
        expect(seen).toEqual(expected);
      },
    );

    it("orders a peer's messages, ours and bare ZADDs by priority then send time", async () => {
      const app = uniqueId("mixed");
      const peer = backend().client();
      const system = await newSystem();
      await peer.hset(backend().keys.status(app), "ordering", "fifo-v1");
      const inbox = backend().keys.inbox(app);
      const now = Date.now() / 1000;
      // A peer's NORMAL sent 10 s ago, scored its way (priority * 1000 + timestamp).
      await peer.zadd(inbox, 2000 + now - 10, peerMessage("p-old", app, "peer-normal-old", 2, now - 10));
      // Ours, NORMAL, sent now.
      await system.ref<Rec>(app).tell("rec", { tag: "ours-normal" }, { priority: Priority.NORMAL });
      // A peer's NORMAL sent just after ours.
      await peer.zadd(inbox, 2000 + now + 1, peerMessage("p-new", app, "peer-normal-new", 2, now + 1));
      // The integration guide's test: a bare ZADD with score 3000, no PUBLISH, no hash.
      await peer.zadd(inbox, 3000, peerMessage("bare", app, "bare-high", 3, 1234567890));
      // A LOW sent by a peer one hour later outranks a CRITICAL under the peers' formula; not here.
      await peer.zadd(inbox, 1000 + now + 3600, peerMessage("p-low", app, "peer-low-later", 1, now + 3600));
      await peer.zadd(
        inbox,
        4000 + now - 3600,
        peerMessage("p-crit", app, "peer-critical-earlier", 4, now - 3600),
      );
      // Any score at all, even one above the canonical band.
      await peer.zadd(inbox, 1e300, peerMessage("huge", app, "huge-score-low", 1, now - 5));
      const seen = await record(await newSystem(), app, 7);
      expect(seen).toEqual([
        "peer-critical-earlier",
        "bare-high",
        "peer-normal-old",
        "ours-normal",
        "peer-normal-new",
        "huge-score-low",
        "peer-low-later",
      ]);
    });

    it("keeps one producer's order even when claims interleave with new sends", async () => {
      const app = uniqueId("live");
      const producer = await newSystem();
      const seen: number[] = [];
      const consumer = await newSystem();
      await consumer.spawn(
        defineActor<{ n: { payload: { i: number } } }>({
          id: app,
          claimBatch: 3,
          handlers: {
            n: (p) => {
              seen.push(p.i);
            },
          },
        }),
      );
      const ref = producer.ref<{ n: { payload: { i: number } } }>(app);
      for (let i = 0; i < 300; i++) await ref.tell("n", { i });
      await waitFor(() => seen.length === 300, 10_000, "300 messages");
      expect(seen).toEqual([...Array(300).keys()]);
    });

    it("lets a CRITICAL message overtake the rest of an already claimed batch", async () => {
      const app = uniqueId("preempt");
      const system = await newSystem();
      const ref = system.ref<Rec>(app);
      await Promise.all(Array.from({ length: 3000 }, (_, i) => ref.tell("rec", { tag: `n${i}` })));
      const seen: string[] = [];
      let criticalSentAt = -1;
      await system.spawn(
        defineActor<Rec>({
          id: app,
          claimBatch: 200,
          handlers: {
            rec: async (p) => {
              seen.push(p.tag);
              // A little work per message, so that a batch takes a while.
              await new Promise((r) => setTimeout(r, 1));
            },
          },
        }),
      );
      await waitFor(() => seen.length >= 20, 5000, "the drain to start");
      criticalSentAt = seen.length;
      await ref.tell("rec", { tag: "CRITICAL" }, { priority: Priority.CRITICAL });
      await waitFor(() => seen.includes("CRITICAL"), 5000, "the critical message");
      const overtaken = seen.indexOf("CRITICAL") - criticalSentAt;
      // Without preemption it would wait for the rest of its 200-message batch (up to 180 more); a
      // loaded machine lets a few dozen run while the send is on its way.
      expect(overtaken).toBeLessThan(50);
    });
  },
  MASTERS_ONLY,
);

// Arithmetic only: no Redis, so once is enough.
describe("canonical scores", () => {
  it("canonical scores stay exact integers inside their band", () => {
    const a = canonicalScore(Priority.LOW, Date.UTC(2090, 0) * 1000);
    const b = canonicalScore(Priority.CRITICAL, 0);
    expect(Number.isSafeInteger(a) && Number.isSafeInteger(b)).toBe(true);
    expect(a).toBeGreaterThanOrEqual(SCORE_BASE);
    expect(b).toBeLessThanOrEqual(2 ** 53 - 1);
    const t = Date.now() * 1000;
    expect(canonicalScore(Priority.NORMAL, t)).toBeGreaterThan(canonicalScore(Priority.NORMAL, t + 1));
    expect(canonicalScore(Priority.HIGH, t + 1e12)).toBeGreaterThan(canonicalScore(Priority.NORMAL, t));
  });
});
