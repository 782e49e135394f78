/**
 * Presence. `status:<app>` keeps the peers' three fields (status, last_seen, app_id) and adds
 * `heartbeat`: the name of a key that lives only while the owning process does. One key per
 * process, refreshed on a timer, so an idle process costs one command per interval whatever
 * its number of actors; an app whose heartbeat key is gone is not online even though it never
 * wrote `offline`. A peer's hash has no heartbeat, so its own word is taken.
 */
import type { Redis } from "ioredis";
import type { Keyspace } from "./keyspace.js";

/** Written to `status:<app>.ordering` by redactor inboxes: senders then use the canonical score. */
export const ORDERING_FIELD = "ordering";
/** The canonical ordering's name. */
export const ORDERING_CANONICAL = "fifo-v1";

/** What `system.status(app)` returns. */
export interface AppStatus {
  app: string;
  /** The hash's `status` field as written (`online`, `offline`, or whatever a peer wrote). */
  status: string | null;
  /** Online: says `online` and, when it has a heartbeat, the heartbeat is fresh. */
  online: boolean;
  /** `alive` / `stale` for heartbeating apps, `none` for peers that do not heartbeat. */
  heartbeat: "alive" | "stale" | "none";
  /** Unix seconds of the last heartbeat, else of `last_seen`, else null. */
  lastSeen: number | null;
  /** Every field of the hash. */
  fields: Record<string, string>;
}

function nowSeconds(): string {
  return (Date.now() / 1000).toFixed(3);
}

/** Presence of the actors of one process. */
export class Presence {
  private timer: NodeJS.Timeout | undefined;
  readonly heartbeatKey: string;

  constructor(
    private readonly redis: Redis,
    private readonly keys: Keyspace,
    readonly nodeId: string,
    /** Heartbeat period, ms; the key lives three periods. */
    private readonly intervalMs: number,
  ) {
    this.heartbeatKey = keys.heartbeat(nodeId);
  }

  /** Writes the heartbeat now and then every interval. */
  async start(): Promise<void> {
    await this.beat();
    this.timer = setInterval(() => {
      this.beat().catch(() => {
        // The connection is down; the next beat after reconnecting refreshes it.
      });
    }, this.intervalMs);
    this.timer.unref();
  }

  /** Refreshes this process's heartbeat key. */
  async beat(): Promise<void> {
    await this.redis.set(this.heartbeatKey, nowSeconds(), "PX", this.intervalMs * 3);
  }

  /** Stops the timer and deletes the heartbeat key. */
  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    await this.redis.del(this.heartbeatKey);
  }

  /** Marks `app` online, owned by this process. */
  async online(app: string): Promise<void> {
    await this.redis.hset(this.keys.status(app), {
      status: "online",
      last_seen: nowSeconds(),
      app_id: app,
      heartbeat: this.heartbeatKey,
      [ORDERING_FIELD]: ORDERING_CANONICAL,
      node: this.nodeId,
    });
  }

  /** Marks `app` offline (it keeps its ordering: its inbox is still a redactor inbox). */
  async offline(app: string): Promise<void> {
    await this.redis.hset(this.keys.status(app), { status: "offline", last_seen: nowSeconds() });
  }
}

function toStatus(app: string, fields: Record<string, string>, beat: string | null | undefined): AppStatus {
  const hasHeartbeat = fields.heartbeat !== undefined && fields.heartbeat !== "";
  const heartbeat = !hasHeartbeat ? "none" : beat ? "alive" : "stale";
  const said = fields.status ?? null;
  // The process heartbeat speaks for the app only while the app says it is online.
  const lastSeenText = (said === "online" ? beat : undefined) ?? fields.last_seen;
  const lastSeen = lastSeenText === undefined ? null : Number(lastSeenText);
  return {
    app,
    status: said,
    online: said === "online" && heartbeat !== "stale",
    heartbeat,
    lastSeen: lastSeen === null || Number.isNaN(lastSeen) ? null : lastSeen,
    fields,
  };
}

/** The presence of one app, or null when it has no status hash. */
export async function readStatus(redis: Redis, keys: Keyspace, app: string): Promise<AppStatus | null> {
  const fields = await redis.hgetall(keys.status(app));
  if (Object.keys(fields).length === 0) return null;
  const beat = fields.heartbeat ? await redis.get(fields.heartbeat) : undefined;
  return toStatus(app, fields, beat);
}

/** The presence of every app that has a status hash, found with SCAN (never KEYS). */
export async function scanStatuses(redis: Redis, keys: Keyspace): Promise<AppStatus[]> {
  const found = new Set<string>();
  let cursor = "0";
  do {
    const [next, batch] = await redis.scan(cursor, "MATCH", keys.statusPattern(), "COUNT", 1000);
    cursor = next;
    for (const key of batch) found.add(key);
  } while (cursor !== "0");
  const statusKeys = [...found];
  if (statusKeys.length === 0) return [];
  const pipeline = redis.pipeline();
  for (const key of statusKeys) pipeline.hgetall(key);
  const hashes = ((await pipeline.exec()) ?? []).map(([, value]) => (value ?? {}) as Record<string, string>);
  const beatKeys = [...new Set(hashes.map((h) => h.heartbeat).filter((k): k is string => !!k))];
  const beats = new Map<string, string | null>();
  if (beatKeys.length > 0) {
    const values = await redis.mget(...beatKeys);
    for (const [i, k] of beatKeys.entries()) beats.set(k, values[i] ?? null);
  }
  return statusKeys.map((key, i) => {
    const fields = hashes[i] ?? {};
    return toStatus(
      keys.appFromStatusKey(key),
      fields,
      fields.heartbeat ? beats.get(fields.heartbeat) : undefined,
    );
  });
}
