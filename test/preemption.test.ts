/**
 * Pre-emption: a CRITICAL message waits at most for the handler in hand, however it was sent:
 * by redactor, by a peer the peers' way (ZADD with score priority * 1000 + timestamp, then
 * PUBLISH), or as a bare ZADD with no PUBLISH (then within one sweep).
 */
import { describe, expect, it } from "vitest";
import { newMessageId } from "../src/envelope.js";
import { type ActorSystem, defineActor, Priority } from "../src/index.js";
import { uniqueId, useRedis } from "./harness/redis.js";
import { useSystems, waitFor } from "./harness/system.js";

const redis = useRedis();
const newSystem = useSystems(redis);

type Rec = { rec: { payload: { tag: string } } };

/**
 * Queues `count` NORMAL messages for a new actor, then starts it (claiming `claimBatch` at a
 * time, so NORMAL messages stay in the inbox above a peer's score); returns what it has run.
 */
async function busyActor(
  system: ActorSystem,
  app: string,
  count: number,
  handlerMs: number,
  claimBatch = 64,
) {
  const ref = system.ref<Rec>(app);
  await Promise.all(Array.from({ length: count }, (_, i) => ref.tell("rec", { tag: `n${i}` })));
  const seen: string[] = [];
  const startedAt = new Map<string, number>();
  await system.spawn(
    defineActor<Rec>({
      id: app,
      claimBatch,
      handlers: {
        rec: async (p) => {
          seen.push(p.tag);
          startedAt.set(p.tag, performance.now());
          await new Promise((r) => setTimeout(r, handlerMs));
        },
      },
    }),
  );
  await waitFor(() => seen.length >= 5, 10_000, "the drain to start");
  return { ref, seen, startedAt };
}

/** A CRITICAL message written the way the Python and C++ peers write it. */
function peerCritical(app: string, tag: string): { id: string; member: string; score: number } {
  const id = newMessageId();
  const timestamp = Date.now() / 1000;
  const member = JSON.stringify({
    id,
    sender: "petal-app-manager",
    recipient: app,
    message_type: "rec",
    payload: { tag },
    priority: 4,
    timestamp,
    reply_to: null,
    timeout: null,
  });
  return { id, member, score: 4 * 1000 + timestamp };
}

describe("pre-emption of a claimed batch", () => {
  it("runs a redactor CRITICAL after at most the handler in hand", async () => {
    const system = await newSystem();
    const app = uniqueId("pre-ours");
    const { ref, seen } = await busyActor(system, app, 300, 3);
    await ref.tell("rec", { tag: "CRITICAL" }, { priority: Priority.CRITICAL });
    const before = seen.length;
    await waitFor(() => seen.includes("CRITICAL"), 5000, "the critical message");
    expect(seen.indexOf("CRITICAL") - before).toBeLessThanOrEqual(1);
  });

  it("runs a peer's CRITICAL (its own score, then PUBLISH) after at most the handler in hand", async () => {
    const system = await newSystem();
    const app = uniqueId("pre-peer");
    const { seen } = await busyActor(system, app, 300, 3);
    const peer = redis().client();
    const critical = peerCritical(app, "CRITICAL");
    await peer.zadd(`queue:${app}:inbox`, critical.score, critical.member);
    await peer.publish(`channel:${app}`, `new_message:${critical.id}`);
    const before = seen.length;
    await waitFor(() => seen.includes("CRITICAL"), 5000, "the critical message");
    expect(seen.indexOf("CRITICAL") - before).toBeLessThanOrEqual(1);
  });

  it("runs a peer's CRITICAL after at most the handler in hand whatever its score (hundreds of foreign NORMALs above it)", async () => {
    const system = await newSystem();
    const app = uniqueId("pre-low-score");
    const { seen } = await busyActor(system, app, 100, 20);
    const peer = redis().client();
    // 200 NORMALs from a peer whose clock runs 35 minutes ahead: their scores are above the
    // CRITICAL's own priority * 1000 + timestamp.
    const ahead = Date.now() / 1000 + 2100;
    for (let i = 0; i < 200; i++) {
      const normal = peerCritical(app, `peer-normal-${i}`);
      const member = normal.member.replace('"priority":4', '"priority":2');
      await peer.zadd(`queue:${app}:inbox`, 2000 + ahead + i, member);
    }
    const critical = peerCritical(app, "CRITICAL");
    await peer.zadd(`queue:${app}:inbox`, critical.score, critical.member);
    await peer.publish(`channel:${app}`, `new_message:${critical.id}`);
    const before = seen.length;
    await waitFor(() => seen.includes("CRITICAL"), 10_000, "the critical message");
    expect(seen.indexOf("CRITICAL") - before).toBeLessThanOrEqual(1);
  });

  it("runs a bare ZADD's CRITICAL (no PUBLISH) within about one sweep", async () => {
    const system = await newSystem({ sweepMs: 250 });
    const app = uniqueId("pre-bare");
    // Batches of 200 messages of 10 ms: without pre-emption the CRITICAL would wait up to 2 s.
    const { seen, startedAt } = await busyActor(system, app, 500, 10, 200);
    const critical = peerCritical(app, "CRITICAL");
    const sentAt = performance.now();
    await redis().client().zadd(`queue:${app}:inbox`, critical.score, critical.member);
    await waitFor(() => seen.includes("CRITICAL"), 10_000, "the critical message");
    const waitedMs = (startedAt.get("CRITICAL") ?? Number.POSITIVE_INFINITY) - sentAt;
    expect(waitedMs).toBeLessThan(1000);
  });
});
