/**
 * The Redis floor: raw ioredis commands doing the least each scenario needs, with no runtime
 * around them. A send is ZADD of the message JSON plus HSET of its status; a drain is ZPOPMIN of
 * a batch, the handler, and one pipelined HSET of `completed` per message; a request round trip
 * is PING; a wake-up is a consumer blocked in BZPOPMIN woken by a ZADD. Nothing here survives a
 * crash (a popped message is gone): it is what the network and Redis cost, not a design.
 */
import { randomUUID } from "node:crypto";
import { Redis as IORedis, type Redis } from "ioredis";
import { pump } from "../util.js";

/** How many messages one floor consumer pops per round trip (the runtime's default claim batch). */
export const FLOOR_BATCH = 64;

/** A message the size and shape of a redactor envelope, for a fair byte count. */
export function floorMember(i: number, recipient: string): { id: string; member: string } {
  const id = randomUUID();
  const member = JSON.stringify({
    id,
    sender: "bench-floor",
    recipient,
    message_type: "noop",
    payload: { i },
    priority: 2,
    timestamp: Date.now() / 1000,
    reply_to: null,
    timeout: null,
  });
  return { id, member };
}

/** Sends `n` messages to `inbox`, `perPipeline` per pipeline and `window` pipelines in flight. */
export async function floorSend(
  client: Redis,
  inbox: string,
  n: number,
  perPipeline = 1000,
  window = 2,
): Promise<void> {
  const pipelines = Math.ceil(n / perPipeline);
  await pump(pipelines, window, async (p) => {
    const pipeline = client.pipeline();
    const end = Math.min(n, (p + 1) * perPipeline);
    for (let i = p * perPipeline; i < end; i++) {
      const { id, member } = floorMember(i, inbox);
      // The score is the sequence number, so ZPOPMIN hands them out in order.
      pipeline.zadd(inbox, i, member);
      pipeline.hset(`message:${id}`, "status", "pending");
    }
    await pipeline.exec();
  });
}

/**
 * Consumes `n` messages from `inbox` one at a time in order, marking each completed. When the
 * inbox is empty it blocks in BZPOPMIN instead of spinning, as a real consumer would.
 */
export async function floorDrain(client: Redis, inbox: string, n: number): Promise<void> {
  let done = 0;
  let handled = 0;
  const handler = (_payload: unknown) => {
    handled += 1;
  };
  while (done < n) {
    let popped = (await client.zpopmin(inbox, FLOOR_BATCH)) as string[];
    if (popped.length === 0) {
      const one = (await client.bzpopmin(inbox, 1)) as [string, string, string] | null;
      if (!one) continue;
      popped = [one[1], one[2]];
    }
    const pipeline = client.pipeline();
    for (let i = 0; i < popped.length; i += 2) {
      const message = JSON.parse(popped[i] as string) as { id: string; payload: unknown };
      handler(message.payload);
      pipeline.hset(`message:${message.id}`, "status", "completed");
    }
    await pipeline.exec();
    done += popped.length / 2;
  }
  if (handled !== n) throw new Error(`floor drain handled ${handled} of ${n}`);
}

/** Latencies (ms) of `n` sequential PINGs. */
export async function floorPing(client: Redis, n: number): Promise<number[]> {
  const latencies: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    await client.ping();
    latencies.push(performance.now() - t0);
  }
  return latencies;
}

/** Resolves once the server has a client blocked in a B* command. */
async function blockedClient(admin: Redis): Promise<void> {
  for (;;) {
    const info = await admin.info("clients");
    if (Number(/blocked_clients:(\d+)/.exec(info)?.[1] ?? 0) > 0) return;
  }
}

/**
 * Latencies (ms) from a ZADD to the moment a consumer blocked in BZPOPMIN on that key has the
 * member: the least a sorted-set mailbox can take to wake an idle consumer.
 */
export async function floorWake(producer: Redis, consumer: Redis, key: string, n: number): Promise<number[]> {
  const latencies: number[] = [];
  for (let i = 0; i < n; i++) {
    const woke = consumer.bzpopmin(key, 5).then(() => performance.now());
    // Only time the wake-up itself: the ZADD must find the consumer already blocked.
    await blockedClient(producer);
    const t0 = performance.now();
    await producer.zadd(key, i, `m${i}`);
    latencies.push((await woke) - t0);
  }
  return latencies;
}

/** A plain connection to the bench server, for one floor run. */
export function floorClient(url: string): Redis {
  const client = new IORedis(url, { maxRetriesPerRequest: null });
  client.on("error", () => {});
  return client;
}
