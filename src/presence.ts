/**
 * Presence. `status:<app>` keeps the peers' three fields (status, last_seen, app_id) and adds,
 * for every redactor process serving the app, a `serving:<node>` field naming that process's
 * heartbeat key: a key that lives only while the process does (src/heartbeat.ts keeps it from
 * a worker thread). An app is online while its hash says `online` and one of the processes it
 * lists is alive, so two processes serving one app id keep it online until the last one stops
 * (src/lua/leave.lua). `heartbeat` and `node` name one of them, for readers that know no
 * `serving:*` fields. A peer's hash names no heartbeat, so its own word is taken.
 *
 * Presence repairs itself without waiting for a reconnect: every heartbeat period one EXISTS over
 * the hashes of all local apps (one command, whatever their number; one per slot on a Redis
 * Cluster) notices a lost hash (FLUSHALL, DEL, a restart without data); then, and whenever the
 * heartbeat key itself had to be written again (Redis lost data), and every FULL_CHECK_MIN_MS as
 * a backstop, one script call per APPS_PER_CALL apps (src/lua/announce.lua) reads every hash and
 * writes again those that are missing or wrong (`offline`, this process not listed).
 *
 * On a Redis Cluster a script call keeps to one slot, and heartbeat keys live in slots of their
 * own: the scripts run once per slot (in the cluster layout, once per app; the calls are sent
 * together), and they do not read heartbeat keys. This module reads them first and passes the
 * dead ones (see the headers of src/lua/announce.lua and src/lua/leave.lua); on one server the
 * scripts read them themselves, in the same call.
 */
import type { Logger } from "pino";
import { type Clock, type HostClock, monotonicWallMs, realTime, type TimerHandle } from "./clock.js";
import {
  bySlot,
  countExisting,
  existsEach,
  getEach,
  hgetallEach,
  isCluster,
  type RedisClient,
  scanAll,
} from "./cluster.js";
import type { ConnectionSpec } from "./connection.js";
import type { SystemEventEmitter } from "./events.js";
import { type BeatResult, Heartbeat } from "./heartbeat.js";
import type { Keyspace } from "./keyspace.js";
import { Scripts } from "./scripts.js";

/** Written to `status:<app>.ordering` by redactor inboxes: senders then use the canonical score. */
export const ORDERING_FIELD = "ordering";
/** The canonical ordering's name. */
export const ORDERING_CANONICAL = "fifo-v1";
/**
 * `status:<app>.role`: what redactor made the app for, when it was not an actor: `system` for a
 * process's own `appId` (its ask replies and outbox). `redactor gc` removes what is left of such
 * an app once its process is gone (src/hygiene.ts); a hash without the field is never its, nor
 * one that shows an actor (a `handles` field: an actor with that id removes the role, and gc
 * does not trust a role next to it).
 */
export const ROLE_FIELD = "role";
/** The `role` of a process's own `appId`. */
export const ROLE_SYSTEM = "system";
/**
 * `status:<app>.handles`: the message types the app's actor has handlers for, as a JSON array of
 * strings, sorted; `"*"` in it when the actor has a fallback (it takes any type), and `"…"` last
 * when the list was cut at HANDLES_MAX types. Written by the process that serves the app, for
 * tools (`redactor inspect`, `redactor dlq retry`); a peer's hash has none.
 */
export const HANDLES_FIELD = "handles";
/** At most this many types are listed in HANDLES_FIELD. */
export const HANDLES_MAX = 64;
/** In HANDLES_FIELD: the actor has a fallback handler, so it takes any type. */
export const HANDLES_ANY = "*";
/** Last in HANDLES_FIELD: the list was cut at HANDLES_MAX types. */
export const HANDLES_CUT = "…";

/**
 * The HANDLES_FIELD value of an actor with handlers for `types` (and a fallback when `anyType`).
 */
export function handlesField(types: readonly string[], anyType: boolean): string {
  const sorted = [...new Set(types)].sort();
  const listed = sorted.slice(0, HANDLES_MAX);
  if (anyType) listed.push(HANDLES_ANY);
  if (sorted.length > HANDLES_MAX) listed.push(HANDLES_CUT);
  return JSON.stringify(listed);
}

/**
 * What a HANDLES_FIELD value says: the listed types, and whether the list is complete (no
 * fallback, not cut), so that a type missing from it is surely not handled; null when the hash
 * has no such field or it cannot be read (an older process, a peer).
 */
export function parseHandles(field: string | null | undefined): Handles | null {
  if (field === null || field === undefined) return null;
  try {
    const value = JSON.parse(field) as unknown;
    if (!Array.isArray(value) || !value.every((t) => typeof t === "string")) return null;
    const types = value.filter((t) => t !== HANDLES_ANY && t !== HANDLES_CUT);
    const anyType = value.includes(HANDLES_ANY);
    const cut = value.includes(HANDLES_CUT);
    return { types, anyType, cut, complete: !anyType && !cut };
  } catch {
    return null;
  }
}

/** A HANDLES_FIELD value, read (parseHandles). */
export interface Handles {
  /** The types with a handler of their own. */
  types: string[];
  /** The actor has a fallback handler: it takes any type. */
  anyType: boolean;
  /** The list was cut at HANDLES_MAX types. */
  cut: boolean;
  /** Neither: a type not in `types` is not handled. */
  complete: boolean;
}
/** Prefix of the field that lists one serving process: `serving:<node>` = its heartbeat key. */
export const SERVING_FIELD_PREFIX = "serving:";

/** Outcome codes of src/lua/leave.lua, per app. */
export const LEAVE_OUTCOME = {
  /** Still online: another live process serves the app. */
  stillServed: 0,
  /** Marked offline: no live process serves it. */
  offline: 1,
  /** No hash (lost): nothing written, so no process still serving it is marked offline. */
  gone: 2,
} as const;

/** Apps per script call: each call is one short step for Redis, even for thousands of apps. */
const APPS_PER_CALL = 1000;

/**
 * The backstop: every hash is read (not only checked for existence) at least this often, ms, or
 * every 30 heartbeat periods when that is longer.
 */
const FULL_CHECK_MIN_MS = 60_000;

/** After the first failed beat in a row, every how many more failures a log line is written. */
const LOG_EVERY_FAILURES = 10;

/** What `system.status(app)` returns. */
export interface AppStatus {
  app: string;
  /** The hash's `status` field as written (`online`, `offline`, or whatever a peer wrote). */
  status: string | null;
  /** Online: says `online` and, when it names heartbeats, one of them is fresh. */
  online: boolean;
  /** `alive` / `stale` for heartbeating apps (alive when any serving process is), `none` for peers. */
  heartbeat: "alive" | "stale" | "none";
  /** Unix seconds of the latest live heartbeat, else of `last_seen`, else null. */
  lastSeen: number | null;
  /** Node ids of the redactor processes serving the app whose heartbeat is alive. */
  nodes: string[];
  /** Every field of the hash. */
  fields: Record<string, string>;
}

/** How a Presence is set up. */
export interface PresenceOptions {
  /** The system's command connection: one server, or a Redis Cluster. */
  redis: RedisClient;
  /**
   * How to open a connection like `redis` (src/connection.ts, specOf): the heartbeat thread opens
   * its own from it (on a cluster, a Cluster client on the same nodes), named
   * `<redis' connection name>:heartbeat`. Options that are functions are dropped (not cloneable).
   */
  connection: ConnectionSpec;
  keys: Keyspace;
  /** This process's node id. */
  nodeId: string;
  /** Heartbeat period, ms; the key lives three periods. */
  heartbeatMs: number;
  /** Redis' clock (last_seen, the heartbeat's value). */
  clock: Clock & { readonly offset: number };
  /**
   * What the repair runs on (the system's `clock` option): its period and when a full check is
   * due. The heartbeat thread and its failure times stay on real time.
   * @default realTime() (Node's timers, the local wall clock)
   */
  hostClock?: HostClock;
  log: Logger;
  events: SystemEventEmitter;
}

/** Presence of the actors of one process. */
export class Presence {
  readonly heartbeatKey: string;
  readonly nodeId: string;
  private readonly redis: RedisClient;
  private readonly keys: Keyspace;
  private readonly scripts: Scripts;
  private readonly heartbeat: Heartbeat;
  private readonly hostClock: HostClock;
  /** The apps this process announced online, by app id. */
  private readonly apps = new Set<string>();
  /** The `role` field of local apps that have one (ROLE_FIELD), written again with their hash. */
  private readonly roles = new Map<string, string>();
  /** The `handles` field of local actors (HANDLES_FIELD), written again with their hash. */
  private readonly handles = new Map<string, string>();
  private repairTimer: TimerHandle | undefined;
  private repairing = false;
  /** Read every hash at the next period (the heartbeat key had to be written again). */
  private fullCheckDue = false;
  private lastFullCheck = 0;
  private beating = false;
  private failures = 0;
  private firstFailureAt = 0;

  constructor(private readonly options: PresenceOptions) {
    this.redis = options.redis;
    this.keys = options.keys;
    this.nodeId = options.nodeId;
    this.hostClock = options.hostClock ?? realTime();
    this.heartbeatKey = options.keys.heartbeat(options.nodeId);
    this.scripts = new Scripts(options.redis);
    this.heartbeat = new Heartbeat(
      {
        redis: options.redis,
        thread: heartbeatConnection(options.redis, options.connection),
        key: this.heartbeatKey,
        periodMs: options.heartbeatMs,
        offsetMs: options.clock.offset,
      },
      {
        beat: (result) => this.onBeat(result),
        threadFailed: (err) => {
          options.log.error({ err }, "the heartbeat thread failed; the event loop beats until it is back");
        },
      },
    );
  }

  private nowSeconds(): string {
    return (this.options.clock.nowMs() / 1000).toFixed(3);
  }

  /**
   * Writes the first heartbeat and hands it to the heartbeat thread (throws HeartbeatError when
   * it cannot be written), and starts the repair of local apps' presence every heartbeat period.
   */
  async start(): Promise<void> {
    await this.heartbeat.start();
    this.beating = true;
    this.lastFullCheck = this.hostClock.now();
    this.repairTimer = this.hostClock.setInterval(() => void this.repair(), this.options.heartbeatMs);
    this.repairTimer.unref();
  }

  /** Redis' clock was measured again: the heartbeat's value follows. */
  clockMoved(): void {
    this.heartbeat.setOffset(this.options.clock.offset);
  }

  /** Refreshes the heartbeat now (after a reconnect) rather than at the next period. */
  beatNow(): void {
    this.heartbeat.beatNow();
  }

  private onBeat(result: BeatResult): void {
    const { log, events } = this.options;
    if (!result.ok) {
      this.failures += 1;
      if (this.failures === 1) this.firstFailureAt = monotonicWallMs();
      const failures = this.failures;
      if (failures === 1 || failures % LOG_EVERY_FAILURES === 0) {
        log.warn(
          { node: this.nodeId, error: result.error, failures },
          `heartbeat failed; after ${3 * this.options.heartbeatMs} ms without one, other processes ` +
            "take this process for dead and run its messages again; check Redis (reachable, not over maxmemory)",
        );
      }
      events.emit("heartbeat.failed", { node: this.nodeId, error: result.error, failures });
      return;
    }
    if (this.failures > 0) {
      const failures = this.failures;
      const downMs = monotonicWallMs() - this.firstFailureAt;
      this.failures = 0;
      log.info({ node: this.nodeId, failures, downMs }, "heartbeat restored");
      events.emit("heartbeat.recovered", { node: this.nodeId, failures, downMs });
    }
    // The key was gone while this process lived: Redis lost data, so may its presence hashes.
    if (result.refreshed === "created" && this.beating) this.fullCheckDue = true;
  }

  private announceArgs(mode: "force" | "repair", apps: readonly string[], dead: string): (string | number)[] {
    return [mode, this.nodeId, this.heartbeatKey, this.nowSeconds(), ORDERING_CANONICAL, dead, ...apps];
  }

  /**
   * Runs a presence script over the status hashes of `apps`: one call per APPS_PER_CALL apps on
   * one server, in turn; on a cluster one call per slot (and per APPS_PER_CALL apps of a slot),
   * the slots' calls sent together. `args` gives each call's arguments from its apps and the
   * heartbeat keys found dead (the scripts' JSON argument): '' on one server (the script reads
   * them itself); on a cluster, with `judge` `"read"`, the dead keys this process read first
   * (HGETALL of the hashes, EXISTS of the keys they name), with `"none"`, `[]`. Resolves with
   * each call's apps and reply.
   */
  private async perCall(
    script: "announce" | "leave",
    apps: readonly string[],
    judge: "read" | "none",
    args: (chunk: readonly string[], dead: string) => (string | number)[],
  ): Promise<{ chunk: readonly string[]; reply: number[] }[]> {
    const cluster = isCluster(this.redis);
    const dead = cluster && judge === "read" ? await this.deadHeartbeats(apps) : undefined;
    const deadArg = (chunk: readonly string[]): string => {
      if (!cluster) return "";
      const found = new Set<string>();
      for (const app of chunk) for (const key of dead?.get(app) ?? []) found.add(key);
      return JSON.stringify([...found]);
    };
    const runGroup = async (group: readonly string[]) => {
      const out: { chunk: readonly string[]; reply: number[] }[] = [];
      for (let i = 0; i < group.length; i += APPS_PER_CALL) {
        const chunk = group.slice(i, i + APPS_PER_CALL);
        const keys = chunk.map((app) => this.keys.status(app));
        const reply = (await this.scripts.run(script, keys, args(chunk, deadArg(chunk)))) as number[];
        out.push({ chunk, reply: reply.map(Number) });
      }
      return out;
    };
    const groups = bySlot(this.redis, apps, (app) => this.keys.status(app));
    return (await Promise.all(groups.map(runGroup))).flat();
  }

  /**
   * For each of `apps`, the heartbeat keys its hash names (other than this process's) that are
   * gone: what a script on a cluster cannot read itself. One HGETALL per hash, one EXISTS per
   * distinct heartbeat key, sent together.
   */
  private async deadHeartbeats(apps: readonly string[]): Promise<Map<string, string[]>> {
    const hashes = await hgetallEach(
      this.redis,
      apps.map((app) => this.keys.status(app)),
    );
    const named = hashes.map((fields) => heartbeatKeysOf(fields).filter((key) => key !== this.heartbeatKey));
    const distinct = [...new Set(named.flat())];
    const exists = await existsEach(this.redis, distinct);
    const gone = new Set(distinct.filter((_, i) => !exists[i]));
    return new Map(apps.map((app, i) => [app, (named[i] ?? []).filter((key) => gone.has(key))]));
  }

  /**
   * Runs announce.lua over `apps`; resolves with the apps whose hash it wrote. On a cluster, a
   * call for one app judges the processes its hash lists (dead ones are dropped); for many apps
   * at once it passes none as dead (see announce.lua).
   */
  private async announce(mode: "force" | "repair", apps: readonly string[]): Promise<string[]> {
    const written: string[] = [];
    const judge = apps.length === 1 ? "read" : "none";
    const calls = await this.perCall("announce", apps, judge, (c, dead) => this.announceArgs(mode, c, dead));
    for (const { chunk, reply } of calls) {
      for (const p of reply) written.push(chunk[p - 1] as string);
    }
    return written;
  }

  /** Marks `app` online, served by this process (among any others that serve it). */
  async online(app: string): Promise<void> {
    this.apps.add(app);
    await this.announce("force", [app]);
  }

  /** Writes again the presence of every local app (after a reconnect: Redis may have lost it). */
  async reannounce(): Promise<void> {
    await this.announce("force", [...this.apps]);
    await this.writeRoles([...this.apps]);
  }

  /**
   * Marks `app` (announced by this process) with a `role` field (ROLE_FIELD), kept while it is
   * local: written again whenever the repair writes its hash again.
   */
  async markRole(app: string, role: string): Promise<void> {
    this.roles.set(app, role);
    await this.writeRoles([app]);
  }

  /**
   * Writes the `handles` field (HANDLES_FIELD, see handlesField) of `app` (announced by this
   * process), kept while it is local: written again whenever the repair writes its hash again.
   */
  async markHandles(app: string, handles: string): Promise<void> {
    this.handles.set(app, handles);
    await this.writeRoles([app]);
  }

  /**
   * HSET of the `role` and `handles` fields of those of `apps` that have them (one command per
   * app). An app served as an actor (it has `handles`) gets no `role`, and loses one that a
   * process with that `appId` wrote (an HDEL sent after the HSET): an actor's id is never a
   * process's, even when it is also the system's `appId`.
   */
  private async writeRoles(apps: readonly string[]): Promise<void> {
    await Promise.all(
      apps.flatMap((app) => {
        if (!this.apps.has(app)) return [];
        const key = this.keys.status(app);
        const role = this.roles.get(app);
        const handles = this.handles.get(app);
        if (handles !== undefined) {
          return [this.redis.hset(key, HANDLES_FIELD, handles), this.redis.hdel(key, ROLE_FIELD)];
        }
        return role === undefined ? [] : [this.redis.hset(key, ROLE_FIELD, role)];
      }),
    );
  }

  /**
   * Runs every heartbeat period: one EXISTS over the hashes of the local apps (one per slot on a
   * cluster); when one is gone (or a full check is due) one script call per APPS_PER_CALL apps
   * (per slot on a cluster) writes again those that are missing or wrong. Emits
   * `presence.repaired` when any was written; resolves with them.
   */
  async repair(): Promise<string[]> {
    if (this.repairing || this.apps.size === 0 || this.redis.status !== "ready") return [];
    this.repairing = true;
    try {
      const apps = [...this.apps];
      const now = this.hostClock.now();
      const full =
        this.fullCheckDue ||
        now - this.lastFullCheck >= Math.max(FULL_CHECK_MIN_MS, 30 * this.options.heartbeatMs);
      if (
        !full &&
        (await countExisting(
          this.redis,
          apps.map((app) => this.keys.status(app)),
        )) === apps.length
      ) {
        return [];
      }
      this.fullCheckDue = false;
      this.lastFullCheck = now;
      const repaired = await this.announce("repair", apps);
      // An app that left while the call was in flight was written back: leave it again.
      const left = repaired.filter((app) => !this.apps.has(app));
      if (left.length > 0) await this.leave(left);
      const fixed = repaired.filter((app) => this.apps.has(app));
      if (fixed.length > 0) {
        await this.writeRoles(fixed);
        this.options.log.warn(
          { apps: fixed.slice(0, 20), count: fixed.length },
          "presence was missing or wrong in Redis (flushed, deleted, restarted without data); written again",
        );
        this.options.events.emit("presence.repaired", { apps: fixed });
      }
      return fixed;
    } catch (err) {
      this.fullCheckDue = true;
      this.options.log.debug({ err }, "presence repair failed; trying again next period");
      return [];
    } finally {
      this.repairing = false;
    }
  }

  /**
   * This process stops serving `apps`: each is marked offline unless another live process still
   * serves it. On a cluster the hashes and the heartbeat keys they name are read first (see
   * leave.lua). Resolves with the apps marked offline.
   */
  async leave(apps: readonly string[]): Promise<string[]> {
    for (const app of apps) {
      this.apps.delete(app);
      this.roles.delete(app);
      this.handles.delete(app);
    }
    const offline: string[] = [];
    const args = (chunk: readonly string[], dead: string) => [
      this.nodeId,
      this.heartbeatKey,
      this.nowSeconds(),
      dead,
      ...chunk,
    ];
    for (const { chunk, reply } of await this.perCall("leave", apps, "read", args)) {
      for (const [j, outcome] of reply.entries()) {
        if (outcome === LEAVE_OUTCOME.offline) offline.push(chunk[j] as string);
      }
    }
    return offline;
  }

  /** Marks `app` offline, unless another live process serves it. */
  async offline(app: string): Promise<void> {
    await this.leave([app]);
  }

  /** Stops the repair and the heartbeat thread (no beat after this); Redis is not touched. */
  async halt(): Promise<void> {
    this.hostClock.clearInterval(this.repairTimer);
    this.repairTimer = undefined;
    await this.heartbeat.stop();
  }

  /** Stops the repair and the heartbeat thread, then deletes the heartbeat key. */
  async stop(): Promise<void> {
    await this.halt();
    await this.redis.del(this.heartbeatKey);
  }
}

/** The heartbeat keys a hash names: its serving processes', and the `heartbeat` field. */
function heartbeatKeysOf(fields: Record<string, string>): string[] {
  const found: string[] = [];
  for (const [field, value] of Object.entries(fields)) {
    if (value !== "" && (field === "heartbeat" || field.startsWith(SERVING_FIELD_PREFIX))) {
      if (!found.includes(value)) found.push(value);
    }
  }
  return found;
}

function toStatus(
  app: string,
  fields: Record<string, string>,
  beats: ReadonlyMap<string, string | null>,
): AppStatus {
  const named = heartbeatKeysOf(fields);
  let latest: number | null = null;
  for (const key of named) {
    const value = beats.get(key);
    if (value === null || value === undefined) continue;
    const seconds = Number(value);
    if (Number.isFinite(seconds) && (latest === null || seconds > latest)) latest = seconds;
  }
  const alive = named.some((key) => beats.get(key) != null);
  const heartbeat = named.length === 0 ? "none" : alive ? "alive" : "stale";
  const said = fields.status ?? null;
  const nodes: string[] = [];
  for (const [field, value] of Object.entries(fields)) {
    if (field.startsWith(SERVING_FIELD_PREFIX) && beats.get(value) != null) {
      nodes.push(field.slice(SERVING_FIELD_PREFIX.length));
    }
  }
  // The heartbeats speak for the app only while the app says it is online.
  const own = fields.last_seen === undefined ? null : Number(fields.last_seen);
  const lastSeen = said === "online" && latest !== null ? latest : own;
  return {
    app,
    status: said,
    online: said === "online" && heartbeat !== "stale",
    heartbeat,
    lastSeen: lastSeen === null || Number.isNaN(lastSeen) ? null : lastSeen,
    nodes,
    fields,
  };
}

/** The values of `keys` (heartbeat keys): one MGET on one server, one GET per slot on a cluster. */
async function readBeats(redis: RedisClient, keys: readonly string[]): Promise<Map<string, string | null>> {
  const beats = new Map<string, string | null>();
  const values = await getEach(redis, keys);
  for (const [i, k] of keys.entries()) beats.set(k, values[i] ?? null);
  return beats;
}

/** The presence of one app, or null when it has no status hash. */
export async function readStatus(redis: RedisClient, keys: Keyspace, app: string): Promise<AppStatus | null> {
  const fields = await redis.hgetall(keys.status(app));
  if (Object.keys(fields).length === 0) return null;
  return toStatus(app, fields, await readBeats(redis, heartbeatKeysOf(fields)));
}

/**
 * The presence of every app that has a status hash, found with SCAN (never KEYS) on every master
 * of a cluster (src/cluster.ts, scanAll), or on the one server.
 */
export async function scanStatuses(redis: RedisClient, keys: Keyspace): Promise<AppStatus[]> {
  const statusKeys = await scanAll(redis, keys.statusPattern());
  if (statusKeys.length === 0) return [];
  const hashes = await hgetallEach(redis, statusKeys);
  const beatKeys = new Set<string>();
  for (const hash of hashes) for (const key of heartbeatKeysOf(hash)) beatKeys.add(key);
  const beats = await readBeats(redis, [...beatKeys]);
  return statusKeys.map((key, i) => toStatus(keys.appFromStatusKey(key), hashes[i] ?? {}, beats));
}

/**
 * The heartbeat thread's connection: like the system's (`spec`), named
 * `<the system connection's name>:heartbeat` (`redactor:heartbeat` when it has none).
 */
function heartbeatConnection(redis: RedisClient, spec: ConnectionSpec): ConnectionSpec {
  if (spec.kind === "server") {
    const name = (isCluster(redis) ? undefined : redis.options.connectionName) ?? spec.options.connectionName;
    return { ...spec, options: { ...spec.options, connectionName: `${name ?? "redactor"}:heartbeat` } };
  }
  const name =
    (isCluster(redis) ? redis.options.redisOptions?.connectionName : undefined) ??
    spec.options.redisOptions?.connectionName;
  return {
    ...spec,
    options: {
      ...spec.options,
      redisOptions: { ...spec.options.redisOptions, connectionName: `${name ?? "redactor"}:heartbeat` },
    },
  };
}
