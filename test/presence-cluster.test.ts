/**
 * Presence on a Redis Cluster, against Presence, readStatus and scanStatuses directly (no
 * system): a status hash (`status:{app}`) and the heartbeat keys it names (`heartbeat:<node>`)
 * live in different slots, so the scripts run once per slot and this process judges the
 * heartbeat keys they cannot read. Two processes serving one app, dead fields dropped, SCAN over
 * every master, repair after a DEL, and the heartbeat thread's own Cluster connection. Also the
 * metrics' queue gauges, which read queues on every master.
 */
import type { Cluster } from "ioredis";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { slotOf } from "../src/cluster.js";
import type { ConnectionSpec } from "../src/connection.js";
import { SystemEventEmitter, type SystemEvents } from "../src/events.js";
import { createSystem } from "../src/index.js";
import { Keyspace } from "../src/keyspace.js";
import { createMetrics } from "../src/metrics.js";
import { Presence, readStatus, scanStatuses } from "../src/presence.js";
import { startCluster, type TestCluster } from "./harness/redis-cluster.js";
import { uniqueId } from "./harness/redis-server.js";

const CONNECTION_NAME = "presence-cluster-test";

let cluster: TestCluster;
let redis: Cluster;
const keys = new Keyspace({ hashTag: true });
const started: Presence[] = [];

beforeAll(async () => {
  cluster = await startCluster({ replicasPerMaster: 0 });
  redis = cluster.client({ redisOptions: { connectionName: CONNECTION_NAME } });
  await redis.ping();
});

afterAll(async () => {
  await Promise.all(started.map((p) => p.halt()));
  await cluster?.stop();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function waitFor(check: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await sleep(10);
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}

/** A started Presence for process `label` on the test cluster. */
async function startPresence(label: string, heartbeatMs = 200, events = new SystemEventEmitter()) {
  const connection: ConnectionSpec = {
    kind: "cluster",
    nodes: cluster.startupNodes,
    options: { redisOptions: { connectionName: CONNECTION_NAME } },
  };
  const presence = new Presence({
    redis,
    connection,
    keys,
    nodeId: uniqueId(label),
    heartbeatMs,
    clock: { nowMicros: () => Date.now() * 1000, nowMs: () => Date.now(), offset: 0 },
    log: pino({ level: "silent" }),
    events,
  });
  await presence.start();
  started.push(presence);
  return presence;
}

/** A process that dies without leaving: its thread stops and its heartbeat key goes. */
async function die(presence: Presence): Promise<void> {
  await presence.halt();
  await redis.del(presence.heartbeatKey);
}

/** Port of the master serving `key`, from the cluster itself (CLUSTER SLOTS). */
async function masterPort(key: string): Promise<number> {
  return (await cluster.masterOf(key)).port;
}

/** An app id whose status hash is on a master other than the one serving `key`. */
async function appAwayFrom(key: string): Promise<string> {
  const port = await masterPort(key);
  for (;;) {
    const app = uniqueId("app");
    if ((await masterPort(keys.status(app))) !== port) return app;
  }
}

describe("presence on a Redis Cluster", () => {
  it("keeps an app online while either of two processes serves it, offline after both leave", async () => {
    const a = await startPresence("a");
    const b = await startPresence("b");
    // The status hash and a's heartbeat key are served by different masters: no script may read both.
    const app = await appAwayFrom(a.heartbeatKey);
    expect(keys.status(app)).toBe(`status:{${app}}`);

    await a.online(app);
    await b.online(app);
    const both = await readStatus(redis, keys, app);
    expect(both).toMatchObject({ app, status: "online", online: true, heartbeat: "alive" });
    expect(both?.nodes.sort()).toEqual([a.nodeId, b.nodeId].sort());

    expect(await a.leave([app])).toEqual([]);
    const one = await readStatus(redis, keys, app);
    expect(one).toMatchObject({ status: "online", online: true, nodes: [b.nodeId] });
    // `heartbeat` and `node` moved from the leaving process to the live one.
    expect(one?.fields).toMatchObject({ heartbeat: b.heartbeatKey, node: b.nodeId });

    expect(await b.leave([app])).toEqual([app]);
    expect(await readStatus(redis, keys, app)).toMatchObject({ status: "offline", online: false, nodes: [] });
    await a.stop();
    await b.stop();
    expect([await redis.exists(a.heartbeatKey), await redis.exists(b.heartbeatKey)]).toEqual([0, 0]);
  });

  it("drops the fields of dead processes on leave and on a one-app announce", async () => {
    const [a, b, dead1, dead2] = await Promise.all(
      ["a", "b", "dead1", "dead2"].map((label) => startPresence(label)),
    );
    if (!a || !b || !dead1 || !dead2) throw new Error("four processes expected");
    const app = await appAwayFrom(dead1.heartbeatKey);
    const status = keys.status(app);
    await dead1.online(app);
    await a.online(app);
    await dead2.online(app);
    await b.online(app);
    // The hash names the last announcer in `heartbeat`; make it name dead1, which dies below.
    await redis.hset(status, "heartbeat", dead1.heartbeatKey, "node", dead1.nodeId);
    await die(dead1);
    await die(dead2);
    expect(await redis.hexists(status, `serving:${dead1.nodeId}`)).toBe(1);

    // a leaves: dead1's and dead2's fields go, b keeps the app online and takes `heartbeat`.
    expect(await a.leave([app])).toEqual([]);
    const fields = await redis.hgetall(status);
    expect(Object.keys(fields).filter((f) => f.startsWith("serving:"))).toEqual([`serving:${b.nodeId}`]);
    expect(fields).toMatchObject({ status: "online", heartbeat: b.heartbeatKey, node: b.nodeId });

    // A one-app announce judges the processes listed too: a dead one's field goes.
    const dead3 = await startPresence("dead3");
    await dead3.online(app);
    await die(dead3);
    await a.online(app);
    const after = await redis.hgetall(status);
    expect(
      Object.keys(after)
        .filter((f) => f.startsWith("serving:"))
        .sort(),
    ).toEqual([`serving:${a.nodeId}`, `serving:${b.nodeId}`].sort());

    // Both leave, one call for many apps: the app that only they served goes offline.
    const other = uniqueId("other");
    await b.online(other);
    expect((await b.leave([app, other])).sort()).toEqual([other]);
    expect(await a.leave([app])).toEqual([app]);
    expect(await readStatus(redis, keys, app)).toMatchObject({ status: "offline", online: false });
    // A hash that is gone is not written back as offline.
    const gone = uniqueId("gone");
    await a.online(gone);
    await redis.del(keys.status(gone));
    expect(await a.leave([gone])).toEqual([]);
    expect(await redis.exists(keys.status(gone))).toBe(0);
  });

  it("finds the apps on every master with scanStatuses", async () => {
    const p = await startPresence("scan");
    const masters = await cluster.masters();
    expect(masters).toHaveLength(3);
    const apps: string[] = [];
    const ports = new Set<number>();
    while (ports.size < masters.length || apps.length < 6) {
      const app = uniqueId("scan");
      apps.push(app);
      ports.add(await masterPort(keys.status(app)));
    }
    for (const app of apps) await p.online(app);
    expect(new Set(apps.map((app) => slotOf(keys.status(app)))).size).toBeGreaterThan(1);

    const statuses = await scanStatuses(redis, keys);
    const byApp = new Map(statuses.map((s) => [s.app, s]));
    for (const app of apps) expect(byApp.get(app)).toMatchObject({ online: true, nodes: [p.nodeId] });

    await die(p);
    const stale = new Map((await scanStatuses(redis, keys)).map((s) => [s.app, s]));
    for (const app of apps) expect(stale.get(app)).toMatchObject({ online: false, heartbeat: "stale" });
  });

  it("writes a deleted hash again within a heartbeat period", async () => {
    const events = new SystemEventEmitter();
    const repaired: SystemEvents["presence.repaired"][] = [];
    events.on("presence.repaired", (e) => repaired.push(e));
    const p = await startPresence("repair", 100, events);
    const lost = uniqueId("lost");
    const kept = await appAwayFrom(keys.status(lost));
    await p.online(lost);
    await p.online(kept);

    await redis.del(keys.status(lost));
    const deletedAt = Date.now();
    await waitFor(async () => (await readStatus(redis, keys, lost))?.online === true, 2000, "repair");
    expect(Date.now() - deletedAt).toBeLessThan(1500);
    expect((await readStatus(redis, keys, lost))?.fields).toMatchObject({
      app_id: lost,
      ordering: "fifo-v1",
      [`serving:${p.nodeId}`]: p.heartbeatKey,
    });
    expect(repaired.flatMap((e) => e.apps)).toEqual([lost]);
    await p.stop();
  });

  it("keeps heartbeat:<node> alive from the heartbeat thread's own Cluster connection", async () => {
    const p = await startPresence("thread", 100);
    const key = p.heartbeatKey;
    const master = await cluster.masterOf(key);
    const node = master.client();
    await waitFor(
      async () => ((await node.client("LIST")) as string).includes(`name=${CONNECTION_NAME}:heartbeat`),
      2000,
      "the heartbeat thread's connection on the key's master",
    );
    // 1 s of synchronous work: more than three lifetimes of the key (300 ms). Only the thread can
    // keep it; it is read before this thread's own timers get a chance to run.
    const before = await redis.get(key);
    const until = Date.now() + 1000;
    while (Date.now() < until) {
      // blocked
    }
    const [ttl, value] = await Promise.all([redis.pttl(key), redis.get(key)]);
    expect(ttl).toBeGreaterThan(0);
    expect(Number(value)).toBeGreaterThan(Number(before));

    await p.stop();
    await sleep(400);
    expect(await redis.exists(key)).toBe(0);
  });

  it("reads the queue gauges of apps on every master", async () => {
    const system = await createSystem({
      appId: uniqueId("metrics"),
      cluster: { nodes: cluster.startupNodes },
      logger: pino({ level: "silent" }),
    });
    try {
      // Peers' queues (no actor claims them), spread over the three masters.
      const peers: string[] = [];
      const ports = new Set<number>();
      while (ports.size < 3) {
        const app = uniqueId("peer");
        peers.push(app);
        ports.add(await masterPort(keys.inbox(app)));
      }
      for (const [i, app] of peers.entries()) {
        await redis.zadd(keys.inbox(app), ...Array.from({ length: i + 1 }, (_, j) => [j, `m${j}`]).flat());
        await redis.zadd(keys.processing(app), 1, "claimed");
        await redis.zadd(keys.dead(app), 1, "d1", 2, "d2");
      }
      const metrics = createMetrics(system, { apps: peers });
      const text = await metrics.metrics();
      metrics.close();
      for (const [i, app] of peers.entries()) {
        expect(text).toContain(`redactor_inbox_depth{app="${app}"} ${i + 1}`);
        expect(text).toContain(`redactor_messages_in_flight{app="${app}"} 1`);
        expect(text).toContain(`redactor_dead_letters{app="${app}"} 2`);
      }
      expect(text).toContain(`redactor_inbox_depth{app="${system.appId}"} 0`);
    } finally {
      await system.shutdown();
    }
  });
});
