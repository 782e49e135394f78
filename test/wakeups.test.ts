/**
 * Wake-ups: one subscriber connection per system; pub/sub is only a hint, so a bare ZADD is
 * still served within about a second, and a reconnect checks every inbox at once. Idle cost
 * does not grow with the number of actors.
 */
import { describe, expect, it } from "vitest";
import { type ActorSystem, defineActor } from "../src/index.js";
import { uniqueId, useRedis } from "./harness/redis.js";
import { useSystems, waitFor } from "./harness/system.js";

const redis = useRedis();
const newSystem = useSystems(redis);

function bare(id: string, recipient: string, n: number) {
  return JSON.stringify({
    id,
    sender: "guide",
    recipient,
    message_type: "n",
    payload: { n },
    priority: 3,
    timestamp: Date.now() / 1000,
    reply_to: null,
    timeout: null,
  });
}

async function spawnCounters(system: ActorSystem, ids: string[], seen: Map<string, number[]>) {
  await Promise.all(
    ids.map((id) =>
      system.spawn(
        defineActor<{ n: { payload: { n: number } } }>({
          id,
          handlers: {
            n: (p) => {
              seen.set(id, [...(seen.get(id) ?? []), p.n]);
            },
          },
        }),
      ),
    ),
  );
}

async function totalCalls(): Promise<{ calls: number; usec: number }> {
  const info = await redis().client().info("commandstats");
  let calls = 0;
  let usec = 0;
  for (const m of info.matchAll(/cmdstat_[^:]+:calls=(\d+),usec=(\d+)/g)) {
    calls += Number(m[1]);
    usec += Number(m[2]);
  }
  return { calls, usec };
}

describe("wake-ups", () => {
  it("serves a message ZADDed with no PUBLISH within about a second", async () => {
    const app = uniqueId("bare");
    const system = await newSystem();
    const seen = new Map<string, number[]>();
    await spawnCounters(system, [app], seen);
    const sent = Date.now();
    await redis()
      .client()
      .zadd(`queue:${app}:inbox`, 3000, bare(uniqueId("m"), app, 1));
    await waitFor(() => (seen.get(app) ?? []).length === 1, 3000, "the bare message");
    expect(Date.now() - sent).toBeLessThan(1500);
  });

  it("uses one subscriber connection for all of a system's actors", async () => {
    const system = await newSystem();
    const ids = Array.from({ length: 50 }, () => uniqueId("many"));
    const seen = new Map<string, number[]>();
    await spawnCounters(system, ids, seen);
    const clients = (await redis().client().client("LIST")) as string;
    const mine = clients
      .split("\n")
      .filter((line) => line.includes(`name=redactor:${system.appId}`) && !line.includes(":heartbeat "));
    // Commands and subscriber (the heartbeat thread has one more of its own).
    expect(mine).toHaveLength(2);
    const sub = mine.find((line) => line.includes(":sub "));
    // 50 actor channels + the system's own + broadcast + its ask replies + scheduled due times.
    expect(sub).toMatch(/ sub=54 /);
    await Promise.all(ids.map((id) => system.ref(id).tell("n", { n: 7 })));
    await waitFor(() => ids.every((id) => seen.get(id)?.[0] === 7), 5000, "every actor");
  });

  it("checks every inbox at once after the subscriber reconnects", async () => {
    const app = uniqueId("reconnect");
    // A sweep far in the future: only the reconnect can explain a quick delivery.
    const system = await newSystem({ sweepMs: 60_000 });
    const seen = new Map<string, number[]>();
    await spawnCounters(system, [app], seen);
    const admin = redis().client();
    await admin.client("KILL", "TYPE", "pubsub");
    // Sent while the subscriber is away: its PUBLISH reaches nobody.
    await admin.zadd(`queue:${app}:inbox`, 3000, bare(uniqueId("m"), app, 2));
    await admin.publish(`channel:${app}`, "new_message:x");
    await waitFor(() => (seen.get(app) ?? []).length === 1, 5000, "delivery after reconnect");
  });

  it("sends the same number of commands when idle with 1 or 500 actors", async () => {
    const window = 2500;
    const measure = async (count: number) => {
      const system = await newSystem({ sweepMs: 250, heartbeatMs: 250 });
      const seen = new Map<string, number[]>();
      await spawnCounters(
        system,
        Array.from({ length: count }, () => uniqueId("idle")),
        seen,
      );
      await new Promise((r) => setTimeout(r, 300));
      const before = await totalCalls();
      await new Promise((r) => setTimeout(r, window));
      const after = await totalCalls();
      await system.shutdown();
      // Subtract the INFO call this measurement itself makes.
      return { calls: after.calls - before.calls - 1, usec: after.usec - before.usec };
    };
    const one = await measure(1);
    const many = await measure(500);
    // Ten sweeps, ten heartbeats (one script each: EVALSHA, and its PEXPIRE and SET, which
    // commandstats counts too) and ten presence checks in the window, give or take one of each,
    // and at most one look at the index of scheduled messages (every 5 s: EVALSHA, TIME,
    // ZRANGEBYSCORE, ZRANGE).
    expect(one.calls).toBeLessThanOrEqual(58);
    // 500 actors checked one by one would be hundreds more; timers drifting under load, a few.
    expect(Math.abs(many.calls - one.calls)).toBeLessThanOrEqual(6);
  });

  it("under load the sweep costs what the busy actors need: 2,000 idle actors beside 10 busy ones add little", async () => {
    const window = 2500;
    const measure = async (idleCount: number) => {
      const system = await newSystem({ sweepMs: 250, heartbeatMs: 1000 });
      let release: () => void = () => {};
      const held = new Promise<void>((r) => {
        release = r;
      });
      const busy = Array.from({ length: 10 }, () => uniqueId("busy"));
      for (const id of busy) {
        await system.spawn(
          defineActor<{ n: { payload: { n: number } } }>({
            id,
            handlers: { n: () => held },
          }),
        );
      }
      await spawnCounters(
        system,
        Array.from({ length: idleCount }, () => uniqueId("quiet")),
        new Map(),
      );
      // Each busy actor runs one message (its processing set exists) with one more waiting.
      await Promise.all(
        busy.flatMap((id) => [system.ref(id).tell("n", { n: 1 }), system.ref(id).tell("n", { n: 2 })]),
      );
      await new Promise((r) => setTimeout(r, 500));
      const before = await totalCalls();
      await new Promise((r) => setTimeout(r, window));
      const after = await totalCalls();
      release();
      await system.shutdown();
      return after.calls - before.calls - 1;
    };
    const few = await measure(0);
    const many = await measure(2000);
    console.log(
      `sweep under load: 10 busy actors ${few} commands in ${window} ms; with 2,000 idle actors beside them ${many}`,
    );
    // One EXISTS per local inbox and processing set per sweep would be about 40,000 more.
    expect(many).toBeLessThanOrEqual(Math.max(1.5 * few, few + 60));
  }, 60_000);
});

describe("wake-ups with keyspace notifications on the server", () => {
  const notifying = useRedis({ args: ["--notify-keyspace-events", "Kz"] });
  const newNotifiedSystem = useSystems(notifying);

  it("wakes an actor at once for a bare ZADD, without a sweep", async () => {
    const app = uniqueId("ks");
    // The sweep is far away: only the keyspace event can explain a quick delivery.
    const system = await newNotifiedSystem({ sweepMs: 60_000 });
    const seen = new Map<string, number[]>();
    await spawnCounters(system, [app], seen);
    const sent = Date.now();
    await notifying()
      .client()
      .zadd(`queue:${app}:inbox`, 3000, bare(uniqueId("m"), app, 1));
    await waitFor(() => (seen.get(app) ?? []).length === 1, 2000, "the bare message");
    expect(Date.now() - sent).toBeLessThan(500);
  });

  it("falls back to sweeping when the option is off", async () => {
    const app = uniqueId("ks-off");
    const system = await newNotifiedSystem({ sweepMs: 200, keyspaceEvents: false });
    const seen = new Map<string, number[]>();
    await spawnCounters(system, [app], seen);
    await notifying()
      .client()
      .zadd(`queue:${app}:inbox`, 3000, bare(uniqueId("m"), app, 1));
    await waitFor(() => (seen.get(app) ?? []).length === 1, 2000, "the bare message");
  });
});
