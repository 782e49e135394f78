/**
 * Actor families (virtual actors, as Orleans grains or Akka Cluster Sharding entities): one
 * definition serves every app id `<family>:<key>`. The processes that spawn a family form its
 * pool (`family:<family>:members`, each with its heartbeat key). An instance lives in Redis
 * (its inbox, its presence) whether or not it is active; it is activated on its first message
 * on one process of the pool, passivated after `idleMs` without a message (its memory given
 * back), and activated again on the next one.
 *
 * - Placement: rendezvous hashing over the pool's live processes. Each process computes the same
 *   owner for an id from the same member list; when a process joins or leaves, only the
 *   instances whose owner changed move (about 1/n of them).
 * - One activation: an instance is activated only under its activation key
 *   (src/activation.ts): a process that is not the owner of an instance cannot claim from it
 *   (fenced in the claim script), and an instance moves only once the process that had it has
 *   passivated it and let its key go, or died.
 * - Finding mail without a SCAN per period: senders PUBLISH `channel:<family>:<key>` (peers and
 *   redactor alike: a family instance never asks for sharded wake-ups), and one PSUBSCRIBE per
 *   pool process hears every instance's. When a process dies, the others find the instances it
 *   had active in its `family:<family>:active:<node>` set. A SCAN of the family's inboxes
 *   remains only as a slow backstop (every SCAN_EVERY_MS) for a peer's bare ZADD with no PUBLISH.
 */
import { createHash } from "node:crypto";
import type { Logger } from "pino";
import type { Activations } from "./activation.js";
import type { ActorDefinition, FamilyDefinition } from "./actor.js";
import type { ActorCell, CellOptions } from "./cell.js";
import type { HostClock, TimerHandle } from "./clock.js";
import { existsEach, type RedisClient, scanKeys } from "./cluster.js";
import { settledBefore } from "./deadline.js";
import type { SystemEventEmitter } from "./events.js";
import type { Keyspace } from "./keyspace.js";
import type { Child, ExitReason } from "./supervisor.js";
import type { Wakeups } from "./wakeups.js";

/** What a family's pool needs from the system that runs it. */
export interface FamilyHost {
  readonly redis: RedisClient;
  readonly keys: Keyspace;
  readonly nodeId: string;
  /** This process's heartbeat key: the pool's members are judged alive by theirs. */
  readonly heartbeatKey: string;
  /** The heartbeat period, ms: the pool looks at its members this often. */
  readonly heartbeatMs: number;
  readonly log: Logger;
  readonly events: SystemEventEmitter;
  readonly activations: Activations;
  readonly wakeups: Wakeups;
  readonly shutdownTimeoutMs: number;
  /**
   * What the pool's tick and scan, and its idle passivation, run on (the system's `clock`
   * option); an instance's idle time is read from its cell's `lastActiveAt`, on the same clock.
   */
  readonly hostClock: HostClock;
  /** Starts an instance's cell, owned (fenced claims), woken by the pool rather than its own channels. */
  startCell(
    definition: ActorDefinition,
    exits: CellOptions["exits"],
    owned: boolean,
    subscribe: boolean,
  ): Promise<ActorCell>;
  /** Takes a cell out of service (no wake-ups, presence offline unless served elsewhere). */
  retireCell(cell: ActorCell, reason: string): Promise<void>;
  /** The pool left (stopped): its family's name may be spawned again. */
  familyStopped(pool: FamilyPool): void;
  /** True when this process runs a cell for `app` already (a plain actor of that id, say). */
  hasCell(app: string): boolean;
  /** Returns to an inbox what the process it was taken over from (`previous`) held. */
  recoverFrom(app: string, previous: string): Promise<void>;
}

/** How often the backstop SCAN of a family's inboxes runs, ms (a peer's bare ZADD with no PUBLISH). */
const SCAN_EVERY_MS = 60_000;

/** How long the active set of a dead member is kept for the others to read, in heartbeat periods. */
const DEAD_SET_PERIODS = 20;

/** How many instances with mail owned elsewhere a process remembers, to look at again when the pool changes. */
const IGNORED_MAX = 10_000;

/** Default `idleMs`. */
export const DEFAULT_IDLE_MS = 60_000;

/** The rendezvous weight of `node` for `app`: the highest weight owns the app. */
function weight(node: string, app: string): bigint {
  return createHash("md5").update(node).update("\n").update(app).digest().readBigUInt64BE(0);
}

/**
 * The process of `members` that owns `app` by rendezvous (highest random weight) hashing, or
 * undefined when there is none.
 */
export function placement(members: readonly string[], app: string): string | undefined {
  let best: string | undefined;
  let bestWeight = -1n;
  for (const node of members) {
    const w = weight(node, app);
    if (w > bestWeight) {
      best = node;
      bestWeight = w;
    }
  }
  return best;
}

/** One process's share of an actor family's pool: the supervised child `system.spawn` adds. */
export class FamilyPool implements Child {
  readonly id: string;
  readonly restartType = "permanent" as const;
  generation = 0;
  private readonly prefix: string;
  private readonly idleMs: number;
  private readonly active = new Map<string, ActorCell>();
  private readonly activating = new Map<string, Promise<void>>();
  private readonly passivating = new Set<string>();
  /** Instances that had mail while they were being activated or passivated here: looked at again after. */
  private readonly mailDuring = new Set<string>();
  /**
   * Instances that had mail while another process owned them by this one's view of the pool,
   * oldest first (at most IGNORED_MAX): when the pool changes they are looked at again, since
   * their owner may have left before handling it.
   */
  private readonly ignored = new Set<string>();
  /** The pool's live processes, this one included, sorted. */
  private members: string[] = [];
  private timer: TimerHandle | undefined;
  private scanTimer: TimerHandle | undefined;
  private running = false;
  private ticking = false;

  constructor(
    private readonly host: FamilyHost,
    private readonly definition: FamilyDefinition,
  ) {
    this.id = definition.family;
    this.prefix = `${definition.family}:`;
    this.idleMs = definition.idleMs ?? DEFAULT_IDLE_MS;
  }

  /** The instances active in this process. */
  get actorIds(): string[] {
    return [...this.active.keys()];
  }

  /** The pool's live processes as this one last saw them. */
  get liveMembers(): readonly string[] {
    return this.members;
  }

  private get membersKey(): string {
    return this.host.keys.familyMembers(this.id);
  }

  private activeKey(node: string): string {
    return this.host.keys.familyActive(this.id, node);
  }

  /** Joins the pool: listens for the instances' mail, looks at the members, starts the backstop scan. */
  async start(): Promise<void> {
    this.generation += 1;
    this.running = true;
    const { redis, nodeId, heartbeatKey } = this.host;
    await redis.hset(this.membersKey, nodeId, heartbeatKey);
    await this.host.wakeups.watchPrefix(this.prefix, (app) => this.onMail(app));
    await this.refresh();
    this.timer = this.host.hostClock.setInterval(() => void this.tick(), this.host.heartbeatMs);
    this.timer.unref();
    this.scanTimer = this.host.hostClock.setInterval(() => void this.scan(), SCAN_EVERY_MS);
    this.scanTimer.unref();
    void this.scan();
  }

  /** Leaves the pool: every active instance is passivated and handed on. */
  async stop(deadlineMs: number): Promise<void> {
    this.running = false;
    this.host.familyStopped(this);
    this.host.hostClock.clearInterval(this.timer);
    this.host.hostClock.clearInterval(this.scanTimer);
    this.host.wakeups.unwatchPrefix(this.prefix);
    await settledBefore(
      this.host.redis.hdel(this.membersKey, this.host.nodeId).catch(() => {}),
      Math.max(deadlineMs, Date.now()) + 1000,
    );
    this.members = this.members.filter((node) => node !== this.host.nodeId);
    await Promise.all([...this.active.keys()].map((app) => this.passivate(app, "stop", deadlineMs)));
  }

  /** The instance `app` has mail: wake it where it is active here, else activate it if it is ours. */
  private onMail(app: string): void {
    if (!this.running || !app.startsWith(this.prefix) || app.length === this.prefix.length) return;
    const cell = this.active.get(app);
    if (cell) {
      cell.wake();
      return;
    }
    // Being activated or passivated: looked at again once that is done.
    if (this.passivating.has(app) || this.activating.has(app)) {
      this.mailDuring.add(app);
      return;
    }
    if (placement(this.members, app) !== this.host.nodeId) {
      this.remember(app);
      return;
    }
    const activation = this.activate(app).finally(() => {
      this.activating.delete(app);
      this.lookAgain(app);
    });
    this.activating.set(app, activation);
  }

  /**
   * Remembers an instance that had mail while another process owned it, or whose activation was
   * refused (another process held it): it is looked at again when the pool changes.
   */
  private remember(app: string): void {
    this.ignored.delete(app);
    this.ignored.add(app);
    if (this.ignored.size > IGNORED_MAX) this.ignored.delete(this.ignored.values().next().value as string);
  }

  /**
   * After an activation or a passivation here: mail that came meanwhile is handled now: the
   * instance is woken when it is active (its first claim may have run before that mail came),
   * else activated where it belongs.
   */
  private lookAgain(app: string): void {
    if (this.mailDuring.delete(app)) this.onMail(app);
  }

  /** Activates `app` here, if its activation key can be had (else another live process has it). */
  private async activate(app: string): Promise<void> {
    const { activations, log, events } = this.host;
    // An actor of this id runs here already (spawned on its own): it is served; its key is its own.
    if (this.host.hasCell(app)) return;
    try {
      const { owner, previous } = await activations.acquire(app);
      // Another live process has it: it hands it on (and wakes it) when it passivates it; and
      // if it dies first, the change of the pool brings this instance back here.
      if (owner !== null || !this.running) {
        if (owner === null) await activations.release(app);
        else this.remember(app);
        return;
      }
      if (previous !== "") await this.host.recoverFrom(app, previous);
      const definition: ActorDefinition = {
        ...this.definition,
        kind: "actor",
        id: app,
        activation: "single",
      };
      let cell: ActorCell;
      try {
        cell = await this.host.startCell(definition, this, true, false);
      } catch (err) {
        await activations.release(app).catch(() => {});
        throw err;
      }
      this.active.set(app, cell);
      await this.host.redis.sadd(this.activeKey(this.host.nodeId), app);
      events.emit("actor.activated", { actor: app, previous });
      // The pool changed while it was being activated: it belongs elsewhere now.
      if (placement(this.members, app) !== this.host.nodeId) void this.passivate(app, "rebalanced");
    } catch (err) {
      log.warn({ err, actor: app }, "could not activate the family instance; its next message tries again");
    }
  }

  /**
   * Passivates `app`: its incarnation stops (the message in hand may finish), its activation
   * key goes, and if mail is waiting its channel is published so that its owner (this process or
   * the one it moved to) activates it again.
   */
  private async passivate(app: string, reason: string, deadlineMs?: number): Promise<void> {
    const cell = this.active.get(app);
    if (!cell || this.passivating.has(app)) return;
    this.passivating.add(app);
    const { redis, keys, activations } = this.host;
    try {
      this.active.delete(app);
      await cell.stop(deadlineMs ?? Date.now() + this.host.shutdownTimeoutMs);
      // Its next timer tick, if it has timers, waits in Redis as a scheduled message that
      // activates it again (src/timers.ts, reminders); written while its activation is held.
      await cell.remindTimers().catch((err: unknown) => {
        this.host.log.warn(
          { err, actor: app },
          "could not leave a reminder for the passivated instance's timers; they fire at its next activation",
        );
      });
      await this.host.retireCell(cell, reason);
      await redis.srem(this.activeKey(this.host.nodeId), app);
      await activations.release(app);
      // Mail waiting, or a failed message waiting for its retry: its owner activates it again
      // (this process, through the look below, or the one it moved to).
      if ((await redis.exists(keys.inbox(app), keys.processing(app))) > 0) {
        this.mailDuring.add(app);
        if (placement(this.members, app) !== this.host.nodeId)
          await redis.publish(keys.channel(app), "activate");
      }
    } catch (err) {
      this.host.log.warn({ err, actor: app }, "passivating the family instance failed");
    } finally {
      this.passivating.delete(app);
      this.lookAgain(app);
    }
  }

  /** An instance's handler failure ended it: it is passivated; its next message activates it afresh. */
  cellExited(cell: ActorCell, reason: ExitReason): void {
    if (this.active.get(cell.id) !== cell) return;
    this.host.log.warn({ actor: cell.id, err: reason.error }, "family instance failed; passivated");
    void this.passivate(cell.id, reason.kind);
  }

  /** Another process owns the instance now (this one was taken for dead): let it go. */
  cellFenced(cell: ActorCell): void {
    if (this.active.get(cell.id) !== cell) return;
    this.active.delete(cell.id);
    void this.host
      .retireCell(cell, "fenced")
      .then(() => this.host.redis.srem(this.activeKey(this.host.nodeId), cell.id))
      .catch(() => {});
  }

  /** Every heartbeat period: look at the members (rebalance, adopt a dead one's instances), passivate the idle. */
  private async tick(): Promise<void> {
    if (this.ticking || !this.running) return;
    this.ticking = true;
    try {
      await this.refresh();
      const now = this.host.hostClock.now();
      const idle = [...this.active].filter(([, cell]) => cell.idle && now - cell.lastActiveAt >= this.idleMs);
      // A message waiting for its retry keeps its instance active until it has run.
      const retrying = await existsEach(
        this.host.redis,
        idle.map(([app]) => this.host.keys.processing(app)),
      );
      for (const [i, [app]] of idle.entries()) if (!retrying[i]) void this.passivate(app, "passivated");
    } catch (err) {
      this.host.log.debug({ err, family: this.id }, "looking at the family's pool failed; next period");
    } finally {
      this.ticking = false;
    }
  }

  /**
   * Reads the pool's members and their heartbeats. A dead member is dropped and its active
   * instances are woken where they now belong; when the live members changed, the instances
   * active here that now belong elsewhere are passivated and handed on.
   */
  private async refresh(): Promise<void> {
    const { redis, keys, nodeId } = this.host;
    const listed = await redis.hgetall(this.membersKey);
    const nodes = Object.keys(listed).filter((node) => node !== nodeId);
    const alive = await existsEach(
      redis,
      nodes.map((node) => listed[node] ?? keys.heartbeat(node)),
    );
    // Taken for dead by the others (a stall past its heartbeat) but alive: join again, with the
    // instances it still has active, before anyone reads its set as a dead member's.
    if (this.running && listed[nodeId] === undefined) await this.rejoin();
    const live = [nodeId, ...nodes.filter((_, i) => alive[i])].sort();
    const dead = nodes.filter((_, i) => !alive[i]);
    if (!this.running) live.splice(live.indexOf(nodeId), 1);
    const changed = live.join("\n") !== this.members.join("\n");
    this.members = live;
    for (const node of dead) await this.adopt(node);
    if (changed) {
      this.host.log.info({ family: this.id, members: live.length }, "family pool changed; rebalancing");
      for (const app of [...this.active.keys()]) {
        if (placement(this.members, app) !== nodeId) void this.passivate(app, "rebalanced");
      }
      // Mail for instances whose owner, as this process saw it, may have left with it unhandled.
      const again = [...this.ignored];
      this.ignored.clear();
      for (const app of again) this.onMail(app);
    }
  }

  /**
   * A member died: drop it, and wake each of the instances it had active, on its channel, so
   * that every live member hears it and the one that owns it now activates it.
   */
  private async adopt(node: string): Promise<void> {
    const { redis, keys } = this.host;
    const key = this.activeKey(node);
    const instances = await redis.smembers(key);
    // Kept a while (a member taken for dead by mistake rejoins with it), then gone.
    await redis.expire(key, Math.ceil((DEAD_SET_PERIODS * this.host.heartbeatMs) / 1000));
    await redis.hdel(this.membersKey, node);
    await Promise.all(instances.map((app) => redis.publish(keys.channel(app), "activate")));
  }

  /** This process is back in the pool, with the instances it has active (its set kept for good again). */
  private async rejoin(): Promise<void> {
    const { redis, nodeId, heartbeatKey } = this.host;
    this.host.log.warn(
      { family: this.id },
      "this process was taken for dead by the family's pool; joining again",
    );
    await redis.hset(this.membersKey, nodeId, heartbeatKey);
    const key = this.activeKey(nodeId);
    if (this.active.size > 0) await redis.sadd(key, ...this.active.keys());
    await redis.persist(key);
  }

  /** The backstop: SCAN the family's inboxes (every master) and wake those that are ours. */
  private async scan(): Promise<void> {
    if (!this.running) return;
    try {
      for await (const batch of scanKeys(this.host.redis, this.host.keys.familyInboxPattern(this.id))) {
        for (const key of batch) {
          const app = this.host.keys.appFromInbox(key);
          if (app !== null) this.onMail(app);
        }
      }
    } catch (err) {
      this.host.log.debug({ err, family: this.id }, "the family's backstop scan failed; next time");
    }
  }
}
