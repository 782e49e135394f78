/**
 * The test harness itself: a real Redis Cluster comes up, serves keys through a cluster client,
 * survives a failover, a restart and slot moves (the client following MOVED and ASK); and the
 * backend matrix points systems and clients at a server or at the cluster.
 */
import calculateSlot from "cluster-key-slot";
import type { Cluster, Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { describeBackends, parseBackends, useBackendSystems } from "./harness/backends.js";
import { startCluster, type TestCluster, type TestClusterNode } from "./harness/redis-cluster.js";

/** A key, made of `prefix` and a counter, that hashes to `slot`. */
function keyInSlot(slot: number, prefix: string): string {
  for (let i = 0; ; i++) {
    const key = `${prefix}:${i}`;
    if (calculateSlot(key) === slot) return key;
  }
}

/** The slot ranges a node's view assigns to the master with id `id`. */
async function slotsOf(node: TestClusterNode, id: string): Promise<number[]> {
  const ranges = (await node.client().call("CLUSTER", "SLOTS")) as [
    number,
    number,
    [string, number, string],
  ][];
  const slots: number[] = [];
  for (const [first, last, [, , owner]] of ranges) {
    if (owner === id) for (let s = first; s <= last; s++) slots.push(s);
  }
  return slots;
}

describe("startCluster", () => {
  let cluster: TestCluster;
  let client: Cluster;

  beforeAll(async () => {
    cluster = await startCluster();
    client = cluster.client();
    console.log(`cluster of 6 nodes started in ${cluster.startupMs} ms`);
  });
  afterAll(async () => {
    await cluster?.stop();
  });

  it("comes up with 3 masters, 1 replica each, every node ok and agreeing on all slots", async () => {
    expect(cluster.nodes).toHaveLength(6);
    expect(cluster.startupNodes).toEqual(cluster.nodes.map((n) => `redis://127.0.0.1:${n.port}`));
    const masters = await cluster.masters();
    expect(masters).toHaveLength(3);
    for (const m of masters) {
      const replicas = await cluster.replicasOf(m);
      expect(replicas).toHaveLength(1);
      expect(await replicas[0]?.role()).toBe("replica");
    }
    for (const node of cluster.nodes) {
      expect(node.id).toMatch(/^[0-9a-f]{40}$/);
      const info = String(await node.client().call("CLUSTER", "INFO"));
      expect(info).toContain("cluster_state:ok");
      expect(info).toContain("cluster_slots_assigned:16384");
      expect(info).toContain("cluster_known_nodes:6");
    }
    const owned = await Promise.all(masters.map((m) => slotsOf(cluster.nodes[0] as TestClusterNode, m.id)));
    expect(owned.reduce((n, slots) => n + slots.length, 0)).toBe(16384);
    expect(cluster.startupMs).toBeLessThan(15_000);
  });

  it("serves keys through the cluster client, each on the master masterOf names", async () => {
    const keys = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "{app}:inbox", "{app}:status"];
    for (const key of keys) await client.set(key, `v-${key}`);
    const owners = new Set<number>();
    for (const key of keys) {
      expect(await client.get(key)).toBe(`v-${key}`);
      expect(await cluster.slotOf(key)).toBe(calculateSlot(key));
      const master = await cluster.masterOf(key);
      owners.add(master.port);
      // The owner answers a plain connection; another master redirects it.
      expect(await master.client().get(key)).toBe(`v-${key}`);
      const other = (await cluster.masters()).find((m) => m !== master) as TestClusterNode;
      await expect(other.client().get(key)).rejects.toThrow(/MOVED/);
    }
    expect(owners.size).toBeGreaterThan(1);
    expect((await cluster.masterOf("{app}:inbox")).port).toBe((await cluster.masterOf("{app}:status")).port);
  });

  it("migrateSlot moves one slot with its keys; the client follows MOVED", async () => {
    const key = "{moving}:k";
    await client.set(key, "v");
    const slot = await cluster.slotOf(key);
    const from = await cluster.masterOf(key);
    const to = (await cluster.masters()).find((m) => m !== from) as TestClusterNode;
    await cluster.migrateSlot(slot, to);
    expect((await cluster.masterOf(key)).port).toBe(to.port);
    expect(await to.client().get(key)).toBe("v");
    await expect(from.client().get(key)).rejects.toThrow(new RegExp(`MOVED ${slot} 127.0.0.1:${to.port}`));
    expect(await client.get(key)).toBe("v"); // its slot map still said `from`
    await expect(cluster.migrateSlot(slot, to)).rejects.toThrow(/already on node/);
  });

  it("beginSlotMigration leaves a slot half moved: ASK for moved keys, until finish", async () => {
    const moved = "{half}:moved";
    const stays = "{half}:stays";
    await client.set(moved, "m");
    await client.set(stays, "s");
    const slot = await cluster.slotOf(moved);
    const from = await cluster.masterOf(moved);
    const to = (await cluster.masters()).find((m) => m !== from) as TestClusterNode;
    const migration = await cluster.beginSlotMigration(slot, to);
    await migration.moveKeys([moved]);
    await expect(from.client().get(moved)).rejects.toThrow(new RegExp(`ASK ${slot} 127.0.0.1:${to.port}`));
    expect(await from.client().get(stays)).toBe("s");
    expect(await client.get(moved)).toBe("m");
    expect(await client.get(stays)).toBe("s");
    await migration.finish();
    expect((await cluster.masterOf(stays)).port).toBe(to.port);
    expect(await to.client().mget(moved, stays)).toEqual(["m", "s"]);
    expect(await client.get(stays)).toBe("s");
  });

  it("reshard moves slots with redis-cli; every key stays readable", async () => {
    const [from, to] = await cluster.masters();
    if (!from || !to) throw new Error("expected masters");
    const before = await slotsOf(from, from.id);
    // redis-cli takes a source's lowest slots first; put keys in a few of them and in the rest.
    const keys = [...before.slice(0, 3), ...before.slice(-3)].map((slot) => keyInSlot(slot, "reshard"));
    for (const key of keys) await client.set(key, key);
    await cluster.reshard(from, to, 5);
    const after = await slotsOf(from, from.id);
    const gained = (await slotsOf(to, to.id)).filter((s) => before.includes(s));
    expect(after).toHaveLength(before.length - 5);
    expect(gained).toHaveLength(5);
    for (const key of keys) expect(await client.get(key)).toBe(key);
    const movedKeys = keys.filter((k) => gained.includes(calculateSlot(k)));
    expect(movedKeys.length).toBeGreaterThan(0);
    for (const key of movedKeys) expect((await cluster.masterOf(key)).port).toBe(to.port);
  });

  let failed: TestClusterNode;
  let promoted: TestClusterNode;

  it("failover kills the master of a key, its replica takes over, the key is still there", async () => {
    const key = "{failover}:k";
    await client.set(key, "kept");
    failed = await cluster.masterOf(key);
    expect(await failed.client().call("WAIT", 1, 2000)).toBe(1);
    const [replica] = await cluster.replicasOf(failed);
    if (!replica) throw new Error("expected a replica");
    promoted = replica;
    const ms = await cluster.failover(failed);
    console.log(`failover (SIGKILL, node timeout 1000 ms) took ${ms} ms`);
    expect(failed.alive).toBe(false);
    expect(await promoted.role()).toBe("master");
    expect((await cluster.masterOf(key)).port).toBe(promoted.port);
    expect(await client.get(key)).toBe("kept");
    await client.set(key, "after");
    expect(await client.get(key)).toBe("after");
    expect(ms).toBeLessThan(15_000);
  });

  it("restartNode brings the failed master back, as a replica of its successor", async () => {
    const id = failed.id;
    await cluster.restartNode(failed);
    expect(failed.alive).toBe(true);
    expect(failed.id).toBe(id);
    expect(String(await failed.client().call("CLUSTER", "MYID"))).toBe(id);
    expect(await failed.role()).toBe("replica");
    expect((await cluster.replicasOf(promoted)).map((n) => n.port)).toEqual([failed.port]);
    await expect(failed.client().call("CLUSTER", "INFO")).resolves.toContain("cluster_state:ok");
  });

  it("a manual failover swaps master and replica without losing a write", async () => {
    const key = "{failover}:k";
    await client.set(key, "manual");
    const ms = await cluster.failover(promoted, { manual: true });
    console.log(`manual failover took ${ms} ms`);
    expect(await failed.role()).toBe("master");
    expect(await promoted.role()).toBe("replica");
    expect((await cluster.masterOf(key)).port).toBe(failed.port);
    expect(await client.get(key)).toBe("manual");
    await expect(cluster.failover(promoted)).rejects.toThrow(/not a master/);
  });
});

describe("parseBackends", () => {
  it("reads REDACTOR_BACKENDS, both by default, and refuses unknown names", () => {
    expect(parseBackends(undefined)).toEqual(["server", "cluster"]);
    expect(parseBackends("")).toEqual(["server", "cluster"]);
    expect(parseBackends("cluster")).toEqual(["cluster"]);
    expect(parseBackends(" cluster , server ")).toEqual(["server", "cluster"]);
    expect(() => parseBackends("sentinel")).toThrow(/unknown backend "sentinel"/);
  });
});

describeBackends("describeBackends", (backend) => {
  const system = useBackendSystems(backend);

  it("gives a raw client, the backend's key layout and the options that reach it", async () => {
    const b = backend();
    const client: Redis | Cluster = b.client();
    await client.set("{probe}:k", b.name);
    expect(await client.get("{probe}:k")).toBe(b.name);
    expect(b.keys.inbox("x")).toBe(b.name === "cluster" ? "queue:{x}:inbox" : "queue:x:inbox");
    if (b.name === "cluster") {
      expect(b.cluster).toBeDefined();
      expect(b.systemOptions()).toEqual({ cluster: { nodes: b.cluster?.startupNodes } });
    } else {
      expect(b.server).toBeDefined();
      expect(b.systemOptions()).toEqual({ redis: b.server?.url });
    }
  });

  it("starts systems on the backend: a tell lands in the inbox the backend's layout names", async () => {
    const b = backend();
    const sender = await system();
    const target = `harness-target-${b.name}`;
    await sender.ref(target).tell("ping", { n: 1 });
    const client = b.client();
    expect(await client.zcard(b.keys.inbox(target))).toBe(1);
    expect(await client.exists(b.keys.status(sender.appId))).toBe(1);
  });
});
