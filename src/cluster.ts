/**
 * One Redis server or a Redis Cluster, seen the same way by the rest of redactor. A cluster
 * splits the keyspace into 16,384 slots spread over its masters; a script call or a multi-key
 * command must keep to one slot (else CROSSSLOT), and SCAN, KEYS and keyspace notifications see
 * one node only. This module holds what differs: which slot a key is in, which master serves
 * it, commands that touch many keys one slot at a time, and SCAN over every master.
 *
 * Source: the Redis Cluster specification (https://redis.io/docs/reference/cluster-spec/):
 * hash tags, CROSSSLOT, MOVED/ASK, and that SCAN is per node.
 */
import calculateSlot from "cluster-key-slot";
import type { ChainableCommander, Cluster, Redis } from "ioredis";

/** A connection to one Redis server, or to a Redis Cluster (ioredis' Cluster client). */
export type RedisClient = Redis | Cluster;

/** True when `client` is a Redis Cluster client. */
export function isCluster(client: RedisClient): client is Cluster {
  return (client as Cluster).isCluster === true;
}

/** The cluster slot (0 … 16383) of a key or a sharded channel, hash tags applied. */
export function slotOf(key: string | Buffer): number {
  return calculateSlot(key);
}

/**
 * The connections to the masters that serve keys: every master of a cluster (from ioredis'
 * current slot map), or the one server.
 */
export function masters(client: RedisClient): Redis[] {
  return isCluster(client) ? client.nodes("master") : [client];
}

/**
 * The connection to the master that serves `key` now, by ioredis' slot map, or null when the
 * map does not know it yet (a cluster still starting up). On one server: the server.
 */
export function masterOf(client: RedisClient, key: string | Buffer): Redis | null {
  if (!isCluster(client)) return client;
  const nodeKey = client.slots[slotOf(key)]?.[0];
  if (!nodeKey) return null;
  return (
    client.nodes("master").find((node) => `${node.options.host}:${node.options.port}` === nodeKey) ?? null
  );
}

/**
 * Splits `items` into groups whose keys (`keyOf`) share one slot, keeping their order within
 * each group. On one server every item is in one group: a multi-key command may span slots there.
 */
export function bySlot<T>(client: RedisClient, items: readonly T[], keyOf: (item: T) => string): T[][] {
  if (!isCluster(client)) return items.length === 0 ? [] : [[...items]];
  const groups = new Map<number, T[]>();
  for (const item of items) {
    const slot = slotOf(keyOf(item));
    const group = groups.get(slot);
    if (group) group.push(item);
    else groups.set(slot, [item]);
  }
  return [...groups.values()];
}

/**
 * Runs one single-key command per key (`add` queues it on a pipeline): one pipeline on one
 * server; on a cluster one pipeline per slot (a cluster pipeline must keep to one node), the
 * slots' pipelines sent together. Resolves with each key's `[error, reply]`, in the order of
 * `keys`.
 */
export async function perKey(
  client: RedisClient,
  keys: readonly string[],
  add: (pipeline: ChainableCommander, key: string) => void,
): Promise<[Error | null, unknown][]> {
  const results: [Error | null, unknown][] = keys.map(() => [null, null]);
  const positions = keys.map((_, i) => i);
  await Promise.all(
    bySlot(client, positions, (i) => keys[i] as string).map(async (group) => {
      const pipeline = client.pipeline();
      for (const i of group) add(pipeline, keys[i] as string);
      for (const [j, result] of ((await pipeline.exec()) ?? []).entries()) {
        results[group[j] as number] = result;
      }
    }),
  );
  return results;
}

/** Whether each key exists (see perKey), in the order of `keys`. */
export async function existsEach(client: RedisClient, keys: readonly string[]): Promise<boolean[]> {
  return (await perKey(client, keys, (p, key) => p.exists(key))).map(([, n]) => n === 1);
}

/**
 * How many of `keys` exist (EXISTS counts a key once per mention): one command on one server,
 * one per slot on a cluster.
 */
export async function countExisting(client: RedisClient, keys: readonly string[]): Promise<number> {
  if (keys.length === 0) return 0;
  // bySlot: one group on one server, one per slot on a cluster.
  const counts = await Promise.all(bySlot(client, keys, (k) => k).map((group) => client.exists(...group)));
  return counts.reduce((a, b) => a + b, 0);
}

/** The values of `keys` (strings), null where missing: one MGET on one server, one per slot on a cluster. */
export async function getEach(client: RedisClient, keys: readonly string[]): Promise<(string | null)[]> {
  const values = new Map<string, string | null>();
  await Promise.all(
    bySlot(client, keys, (k) => k).map(async (group) => {
      const got = await client.mget(...group);
      for (const [i, key] of group.entries()) values.set(key, got[i] ?? null);
    }),
  );
  return keys.map((key) => values.get(key) ?? null);
}

/**
 * Every key that matches `pattern`, found with SCAN (never KEYS) on every master in turn; yields
 * one batch per SCAN reply. A key that moves between masters during the scan (resharding) may be
 * yielded twice or, like SCAN on one server, missed: callers treat the result as a snapshot.
 */
export async function* scanKeys(
  client: RedisClient,
  pattern: string,
  count = 1000,
): AsyncGenerator<string[]> {
  for (const node of masters(client)) {
    let cursor = "0";
    do {
      const [next, batch] = await node.scan(cursor, "MATCH", pattern, "COUNT", count);
      cursor = next;
      if (batch.length > 0) yield batch;
    } while (cursor !== "0");
  }
}

/** Every distinct key that matches `pattern` on every master (see scanKeys). */
export async function scanAll(client: RedisClient, pattern: string, count = 1000): Promise<string[]> {
  const found = new Set<string>();
  for await (const batch of scanKeys(client, pattern, count)) for (const key of batch) found.add(key);
  return [...found];
}

/** Reads many hashes (see perKey), in the order of `keys`; a missing hash reads as `{}`. */
export async function hgetallEach(
  client: RedisClient,
  keys: readonly string[],
): Promise<Record<string, string>[]> {
  return (await perKey(client, keys, (p, key) => p.hgetall(key))).map(
    ([, value]) => (value ?? {}) as Record<string, string>,
  );
}
