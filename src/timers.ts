/**
 * Durable actor timers (reminders): `ctx.timers.start(key, type, payload, { everyMs } | { cron })`
 * makes the actor receive a message of `type` with `payload` every period, from itself, through
 * its own inbox: the same handlers, priority, lifecycle and retries as any message.
 *
 * A timer lives in Redis, in the actor's slot: its spec in `timers:<app>:specs` (a hash, timer key
 * → spec JSON) and its next due time in `timers:<app>:due` (a sorted set, score = ms). So it
 * survives a restart of the actor, of its process, and of Redis with AOF. Each running
 * incarnation of the actor (an ActorCell) has one {@link ActorTimers}: it reads only the head of
 * its own due set and arms ONE host timer (through the system's HostClock) for it, so idle timers
 * cost no scan at start and no work while not due. When it fires, it reads the entries due by
 * now (at most {@link FIRE_BATCH} at a time), computes for each the ticks to send under its
 * missed-tick policy ({@link dueTicks}) and its next due time, and sends them with
 * `timer-fire.lua`: a compare-and-set on the due time and the spec's generation, so that when
 * several processes host the actor (activation "shared", or an owner that has not yet learned it
 * was taken over) exactly one of them sends each tick. A tick's message id is deterministic,
 * `timer:<key>:<generation>:<due ms>`, and the script does not send an id whose message hash
 * exists: a tick is never sent twice.
 *
 * Under "skip" and "once" the script also holds a tick while the timer's previous tick (its id
 * kept in `timers:<app>:last`) still waits in the inbox, so a slow handler never fills it.
 * `start` and `cancel` publish `timers_changed` on the actor's wake-up path (src/wakeups.ts), so
 * that its incarnations in other processes re-read the head and re-arm (activation "shared").
 *
 * Time: "now" is the HostClock's `now()`: Redis' clock read locally by default, or a test's
 * SimulatedClock (virtual time; Redis then only stores). Redis never judges a timer's due time.
 *
 * Reminders (actor families): an instance runs its timers while it is active. When it is
 * passivated (idle, rebalanced, its process stopping, a failure: src/family.ts), {@link
 * ActorTimers.remind} leaves the next tick of its earliest timer in Redis as a scheduled message
 * (the system's own path of `tell(..., { at })`, src/scheduler.ts) with the tick's own id, type,
 * payload and priority, sender the instance, due at the timer's due time. The scheduler moves it
 * into the inbox then and publishes its wake-up, so the pool activates the instance; its timers
 * find that tick's hash (timer-fire.lua, "reminded"), do not send it again, record it as the last
 * tick, and move the due time on. `cancel` and a replacing `start` cancel a reminder still waiting
 * (Scheduler.cancel). A process killed outright writes no reminder: the pool adopts the
 * instances it had active (its active set) and their new owner sends the due ticks by policy.
 */
import { randomUUID } from "node:crypto";
import { CronExpressionParser } from "cron-parser";
import type { Logger } from "pino";
import superjson from "superjson";
import type { PayloadOf, Protocol, UntypedProtocol } from "./actor.js";
import type { HostClock, TimerHandle } from "./clock.js";
import type { RedisClient } from "./cluster.js";
import type { Envelope } from "./envelope.js";
import { InvalidIdError, InvalidOptionError, TimerScriptError } from "./errors.js";
import type { SystemEventEmitter } from "./events.js";
import { checkId } from "./ids.js";
import { STATUS } from "./lifecycle.js";
import type { EncodedMessage, Mailbox } from "./mailbox.js";
import { checkBoolean, checkNumber, checkObject, checkOneOf, MAX_SCHEDULE_MS } from "./options.js";
import { isPriority, type Priority } from "./priority.js";
import type { Scheduler } from "./scheduler.js";
import { Scripts } from "./scripts.js";
import { TIMERS_CHANGED } from "./wakeups.js";

/**
 * What a timer does when, at the moment it is fired, more than one of its ticks is due: when the
 * tick it is due for is more than one period late. That is so after the actor was down (no process
 * ran it), and equally while it runs, whenever the host was late: a stalled event loop, Redis paused
 * or unreachable, a passivated family instance woken late (see "Reminders" in the module comment),
 * or in a test one `SimulatedClock.advance` over several periods (Akka's and Dapr's timers behave
 * alike). A tick less than one period late is always sent.
 * - `"skip"`: none of them. A tick that is merely late (no later tick has fallen due yet) still
 *   fires; once two or more ticks are due, none is sent and the timer goes on at its next tick
 *   after now.
 * - `"once"`: one tick for all of them (the most recent one's id and time).
 * - `"all"`: one tick per missed tick, oldest first, at most {@link MAX_CATCH_UP_TICKS} (the most
 *   recent ones; older ones are dropped and logged).
 *
 * A slow handler: under `"skip"` and `"once"` no new tick is sent while the timer's previous tick
 * still waits in the inbox (not yet started by a handler); the tick due then counts as missed, so a
 * handler slower than the period never fills the inbox (it runs back to back instead). `"all"`
 * sends every tick whatever waits: use it only when the handler keeps up with the period.
 */
export type MissedTicks = "skip" | "once" | "all";

/** When a timer fires: every `everyMs`, or on a cron schedule. */
export type TimerSchedule =
  | {
      /**
       * The period, ms: the first tick is `everyMs` after `start`, then one every `everyMs` on
       * that grid. A whole number, at least {@link MIN_EVERY_MS} (10), at most
       * {@link MAX_EVERY_MS} (10 years).
       */
      everyMs: number;
      cron?: never;
      tz?: never;
    }
  | {
      /**
       * A cron expression (cron-parser syntax: 5 fields, or 6 with seconds first), e.g.
       * `"0 * * * *"` (hourly) or `"*\/10 * * * * *"` (every 10 s). Checked at `start`.
       */
      cron: string;
      /**
       * The IANA time zone the expression is read in, e.g. `"Europe/Paris"`.
       * @default "UTC" (the same for every process, wherever it runs)
       */
      tz?: string;
      everyMs?: never;
    };

/** Options of `ctx.timers.start` besides the schedule. */
export interface TimerOptions {
  /**
   * What happens to ticks missed while the actor was down or its host was late by more than one
   * period, and while the previous tick still waits in the inbox (see {@link MissedTicks}).
   * @default "once"
   */
  missed?: MissedTicks;
  /**
   * Priority of the tick messages in the actor's inbox.
   * @default Priority.NORMAL
   */
  priority?: Priority;
  /**
   * What `start` does when a timer of that key exists: `true` replaces it (new payload and
   * schedule, starting from now); `false` keeps it as it is, schedule and missed ticks included.
   * A `setup` that starts its timers on every incarnation wants `false`: a restart then does not
   * move the schedule, and the ticks missed while the actor was down follow `missed`.
   * @default true
   */
  replace?: boolean;
}

/** What `start` did: there was no such timer, it replaced one, or it kept the one there (`replace: false`). */
export type TimerStartOutcome = "started" | "replaced" | "kept";

/** The last argument of `ctx.timers.start`: a schedule and its options. */
export type TimerStartOptions = TimerSchedule & TimerOptions;

/** One timer as `ctx.timers.list()` shows it. */
export interface TimerInfo {
  key: string;
  type: string;
  everyMs?: number;
  cron?: string;
  tz?: string;
  missed: MissedTicks;
  priority: Priority;
  /** When it fires next, ms since the epoch (by the clock that computed it). */
  nextDueMs: number | null;
}

/** An actor's durable timers: `ctx.timers`, in `setup` and in every handler. */
export interface Timers<P extends Protocol<P> = UntypedProtocol> {
  /**
   * Starts the timer `key` of this actor, or replaces it if one of that key exists (its schedule
   * starts again from now). From then on, a message of `type` with `payload` (sender = this
   * actor) arrives in this actor's inbox every period, across restarts of the actor, of its
   * process and of Redis with AOF, once per period however many processes host the actor.
   * Resolves once the timer is in Redis, with what it did (see `replace`).
   * @param key the timer's name within this actor: 1 to 256 bytes of text, no control character.
   * @throws InvalidIdError for the key; InvalidOptionError for the type, the schedule (exactly one
   *   of everyMs and cron), `missed` or `priority` (a cron expression or time zone the parser
   *   refuses: its message is the cause); UnserializableValueError or MessageTooLargeError for the
   *   payload; RedisCommandError when Redis refuses.
   */
  start<K extends keyof P & string>(
    key: string,
    type: K,
    payload: PayloadOf<P, K>,
    options: TimerStartOptions,
  ): Promise<TimerStartOutcome>;
  /**
   * Cancels the timer `key`: no tick of it is sent any more (a tick already in the inbox stays).
   * Resolves true when it existed, false when there was none.
   */
  cancel(key: string): Promise<boolean>;
  /** This actor's timers, read from Redis (one HGETALL and one ZRANGE). */
  list(): Promise<TimerInfo[]>;
}

/** Smallest `everyMs`. */
export const MIN_EVERY_MS = 10;

/** Largest `everyMs`: 10 years, like the longest delay of a scheduled message (MAX_SCHEDULE_MS). */
export const MAX_EVERY_MS = Math.floor(MAX_SCHEDULE_MS);

/** Most ticks one firing sends under `missed: "all"`. */
export const MAX_CATCH_UP_TICKS = 100;

/** How many due timers one read takes. */
export const FIRE_BATCH = 100;

/** After a Redis failure, how long the timers wait before they look again, ms. */
const RETRY_MS = 1000;

/** A timer as stored in `timers:<app>:specs` (JSON; `gen` first, the scripts read it there). */
export interface TimerSpec {
  /** A fresh id per `start`: what the fire script compares. */
  gen: string;
  type: string;
  /** The payload as the envelope encodes it (docs/PROTOCOL.md), and its superjson metadata. */
  payload: unknown;
  payload_meta?: unknown;
  everyMs?: number;
  cron?: string;
  tz?: string;
  missed: MissedTicks;
  priority: Priority;
}

/** The outcome codes of timer-start.lua. */
const START_OUTCOME: Readonly<Record<number, TimerStartOutcome | "refused">> = {
  1: "started",
  2: "replaced",
  3: "kept",
  [-1]: "refused",
};

/** The outcome codes of timer-cancel.lua. */
const CANCEL_OUTCOME: Readonly<Record<number, "cancelled" | "not-found" | "changed" | "refused">> = {
  1: "cancelled",
  0: "not-found",
  [-1]: "changed",
  [-2]: "refused",
};

/** The outcome codes of timer-fire.lua. */
const FIRE_OUTCOME: Readonly<
  Record<number, "fired" | "held" | "reminded" | "stale-due" | "stale-generation" | "refused">
> = {
  1: "fired",
  2: "held",
  3: "reminded",
  0: "stale-due",
  [-1]: "stale-generation",
  [-2]: "refused",
};

/** Maps a script's outcome code; an unknown code is a bug in the script. */
function outcomeOf<T>(table: Readonly<Record<number, T>>, code: unknown, script: string): T {
  const known = table[Number(code)];
  if (known === undefined) throw new Error(`${script} returned the unknown outcome code ${String(code)}`);
  return known;
}

function invalid(option: string, value: unknown, must: string, cause?: unknown): InvalidOptionError {
  const err = new InvalidOptionError(option, value, `invalid option ${option}: ${must}`);
  if (cause !== undefined) err.cause = cause;
  return err;
}

/** The first cron tick strictly after `afterMs`. */
function cronNext(cron: string, tz: string, afterMs: number): number {
  return CronExpressionParser.parse(cron, { currentDate: new Date(afterMs), tz })
    .next()
    .getTime();
}

/**
 * Checks a timer's key, type and options before anything is written.
 * @throws InvalidIdError for the key, InvalidOptionError for the rest.
 */
export function checkTimerStart(key: unknown, type: unknown, options: unknown): void {
  checkId(key, "timer key", { reserved: false });
  if ((key as string).includes("\ufffd")) {
    throw new InvalidIdError(
      key,
      "lone-surrogate",
      `invalid timer key ${JSON.stringify(key)}: it holds U+FFFD`,
    );
  }
  if (typeof type !== "string" || type === "") {
    throw invalid("type", type, "the message type of the ticks must be a non-empty string");
  }
  if (typeof options !== "object" || options === null || Array.isArray(options)) {
    throw invalid(
      "timer options",
      options,
      "pass { everyMs } or { cron, tz? }, with missed and priority if needed",
    );
  }
  checkObject("timer options", options);
  const o = options as Record<string, unknown>;
  const hasEvery = o.everyMs !== undefined;
  const hasCron = o.cron !== undefined;
  if (hasEvery === hasCron) {
    throw invalid(
      "everyMs",
      o.everyMs,
      `give exactly one of everyMs and cron (got ${hasEvery ? "both" : "neither"})`,
    );
  }
  if (hasEvery) {
    checkNumber("everyMs", o.everyMs, { integer: true, min: MIN_EVERY_MS, max: MAX_EVERY_MS, unit: "ms" });
    if (o.tz !== undefined) throw invalid("tz", o.tz, "a time zone goes with cron, not with everyMs");
  } else {
    if (typeof o.cron !== "string" || o.cron.trim() === "") {
      throw invalid("cron", o.cron, 'it must be a cron expression, e.g. "*/5 * * * *"');
    }
    if (o.tz !== undefined && (typeof o.tz !== "string" || o.tz === "")) {
      throw invalid(
        "tz",
        o.tz,
        'it must be an IANA time zone such as "Europe/Paris" (leave it out for "UTC")',
      );
    }
    try {
      cronNext(o.cron, (o.tz as string | undefined) ?? "UTC", Date.now());
    } catch (err) {
      throw invalid(
        "cron",
        o.cron,
        `cron-parser refuses ${JSON.stringify(o.cron)}${o.tz ? ` in time zone ${JSON.stringify(o.tz)}` : ""} ` +
          `(${(err as Error).message}); fix the expression or the time zone`,
        err,
      );
    }
  }
  checkOneOf("missed", o.missed, ["skip", "once", "all"], '"once"');
  checkBoolean("replace", o.replace, "true");
  if (o.priority !== undefined && !isPriority(o.priority)) {
    throw invalid("priority", o.priority, "it must be a Priority: 1 LOW, 2 NORMAL, 3 HIGH or 4 CRITICAL");
  }
}

/** What one firing of a timer does. */
export interface DueTicks {
  /** The due times (ms) of the ticks to send, oldest first. */
  ticks: number[];
  /** Ticks due by now that are not sent (skip, once, or past the cap of all). */
  dropped: number;
  /** When the timer is due next (strictly after `nowMs`). */
  nextDueMs: number;
}

/**
 * The ticks a timer due at `dueMs` sends when it is fired at `nowMs` (≥ dueMs), under its
 * missed-tick policy, and its next due time. Pure: the same inputs give the same answer in every
 * process. An everyMs timer keeps its grid (`dueMs + k * everyMs`); a cron timer its schedule.
 */
export function dueTicks(
  spec: Pick<TimerSpec, "everyMs" | "cron" | "tz" | "missed">,
  dueMs: number,
  nowMs: number,
): DueTicks {
  // The due ticks, as far as needed: all of them for everyMs (arithmetic); for cron the first
  // MAX_CATCH_UP_TICKS + 1 forward, then (when there are more) the latest ones backward.
  let count: number;
  let latest: number[];
  let nextDueMs: number;
  if (spec.everyMs !== undefined) {
    const every = spec.everyMs;
    count = nowMs < dueMs ? 0 : Math.floor((nowMs - dueMs) / every) + 1;
    nextDueMs = count === 0 ? dueMs : dueMs + count * every;
    const from = Math.max(0, count - MAX_CATCH_UP_TICKS);
    latest = [];
    for (let i = from; i < count; i++) latest.push(dueMs + i * every);
  } else {
    const cron = spec.cron as string;
    const tz = spec.tz ?? "UTC";
    const forward: number[] = [];
    let t = dueMs;
    while (t <= nowMs && forward.length <= MAX_CATCH_UP_TICKS) {
      forward.push(t);
      t = cronNext(cron, tz, t);
    }
    nextDueMs = t > nowMs ? t : cronNext(cron, tz, nowMs);
    if (forward.length <= MAX_CATCH_UP_TICKS) {
      count = forward.length;
      latest = forward;
    } else {
      // More than the cap: the exact count does not matter, only that it is above it.
      count = MAX_CATCH_UP_TICKS + 1;
      const expr = CronExpressionParser.parse(cron, { currentDate: new Date(nowMs + 1), tz });
      latest = [];
      while (latest.length < MAX_CATCH_UP_TICKS) latest.unshift(expr.prev().getTime());
    }
  }
  let ticks: number[];
  if (count === 0) ticks = [];
  else if (spec.missed === "all") ticks = latest;
  else if (spec.missed === "once") ticks = [latest[latest.length - 1] as number];
  else ticks = count === 1 ? [dueMs] : [];
  return { ticks, dropped: count - ticks.length, nextDueMs };
}

/** The message id of the tick of timer `key` (generation `gen`) due at `dueMs`. */
export function tickId(key: string, gen: string, dueMs: number): string {
  return `timer:${key}:${gen}:${dueMs}`;
}

/** What ActorTimers needs from the system that runs the actor (a CellHost has it). */
export interface TimerHost {
  readonly mailbox: Mailbox;
  /** The clock of host-side timers: "now", and the one armed timer. */
  readonly hostClock: HostClock;
  readonly events: SystemEventEmitter;
  /**
   * The system's own path of a scheduled send (`tell(..., { at })`: Scheduler.preindex,
   * Mailbox.schedule, Scheduler.indexed): a reminder goes through it. A duplicate id is not
   * scheduled again.
   */
  scheduleMessage(encoded: EncodedMessage, dueMs: number): Promise<void>;
  /** The system's scheduler: a waiting reminder is cancelled through it (Scheduler.cancel). */
  readonly scheduler: Pick<Scheduler, "cancel">;
}

/**
 * The timers of one running incarnation of an actor: `ctx.timers`, and the one host timer armed
 * for the earliest due one. Created before `setup` (which may start timers), run once the actor
 * serves (`run`), stopped when the incarnation ends (`stop`): crash, restart, shutdown,
 * passivation, or another process taking the actor over.
 */
export class ActorTimers implements Timers {
  private readonly specsKey: string;
  private readonly dueKey: string;
  private readonly lastKey: string;
  private readonly scripts: Scripts;
  private armed: TimerHandle | undefined;
  private running = false;
  private stopped = false;
  private pumping: Promise<void> | undefined;
  private again = false;

  constructor(
    private readonly host: TimerHost,
    private readonly actor: string,
    private readonly log: () => Logger,
  ) {
    const keys = host.mailbox.keys;
    this.specsKey = keys.timerSpecs(actor);
    this.dueKey = keys.timerDue(actor);
    this.lastKey = keys.timerLast(actor);
    // A Scripts holds no state of its own (the sources and SHAs are module-wide).
    this.scripts = new Scripts(host.mailbox.redis);
  }

  private get redis(): RedisClient {
    return this.host.mailbox.redis;
  }

  private get clock(): HostClock {
    return this.host.hostClock;
  }

  async start(
    key: string,
    type: string,
    payload: unknown,
    options: TimerStartOptions,
  ): Promise<TimerStartOutcome> {
    checkTimerStart(key, type, options);
    const o = options as TimerStartOptions & { everyMs?: number; cron?: string; tz?: string };
    const priority = o.priority ?? 2;
    // Encoded as a tick would be: refuses an unserializable or oversized payload now.
    const probe = this.host.mailbox.encode(
      this.tickEnvelope(tickId(key, randomUUID(), 0), type, payload, priority, 0),
    );
    const wire = JSON.parse(probe.member) as { payload: unknown; payload_meta?: unknown };
    const spec: TimerSpec = {
      gen: randomUUID(),
      type,
      payload: wire.payload,
      ...(wire.payload_meta !== undefined ? { payload_meta: wire.payload_meta } : {}),
      ...(o.everyMs !== undefined ? { everyMs: o.everyMs } : { cron: o.cron, tz: o.tz ?? "UTC" }),
      missed: o.missed ?? "once",
      priority,
    };
    const now = Math.floor(this.clock.now());
    const firstDue =
      spec.everyMs !== undefined ? now + spec.everyMs : cronNext(spec.cron as string, spec.tz as string, now);
    // The reminder the timer being replaced may have waiting (read before the spec is overwritten).
    const waiting = o.replace === false ? [] : await this.reminderIds(key);
    const code = await this.scripts.run("timer-start", this.changeKeys(), [
      key,
      JSON.stringify(spec),
      firstDue,
      o.replace === false ? "0" : "1",
      ...this.hintArgs(),
    ]);
    const outcome = outcomeOf(START_OUTCOME, code, "timer-start.lua");
    if (outcome === "refused") {
      throw new TimerScriptError(
        `timer-start.lua refused timer "${key}" of actor "${this.actor}": a bug in redactor`,
      );
    }
    if (outcome === "replaced") await this.cancelReminders(waiting);
    if (outcome !== "kept") await this.poke();
    return outcome;
  }

  async cancel(key: string): Promise<boolean> {
    checkId(key, "timer key", { reserved: false });
    const waiting = await this.reminderIds(key);
    const outcome = await this.runCancel(key, "0", "");
    if (outcome === "cancelled") await this.cancelReminders(waiting);
    await this.poke();
    return outcome === "cancelled";
  }

  /**
   * The incarnation is passivated (a family instance: idle, rebalanced, its process stopping, a
   * failure): its earliest due timer's next tick is left in Redis as a scheduled message, a
   * reminder, with the tick's own id, type, payload and priority, sender the actor, due at the
   * timer's due time. The scheduler moves it into the inbox then and publishes its wake-up, so the
   * instance is activated again by its tick; that incarnation's timers find the tick there
   * (timer-fire.lua, "reminded") and do not send it again. Nothing when the actor has no timer.
   * Call it after `stop`, while the actor's activation is still held.
   * @throws RedisCommandError when Redis refuses (then no reminder is waiting).
   */
  async remind(): Promise<void> {
    const head = await this.redis.zrange(this.dueKey, 0, 0, "WITHSCORES");
    if (head.length < 2) return;
    const key = head[0] as string;
    const dueMs = Number(head[1]);
    const text = await this.redis.hget(this.specsKey, key);
    const spec = text === null ? undefined : parseSpec(text);
    if (!spec) return;
    const encoded = this.host.mailbox.encode(
      this.tickEnvelope(tickId(key, spec.gen, dueMs), spec.type, payloadOf(spec), spec.priority, dueMs),
    );
    await this.host.scheduleMessage(encoded, dueMs);
    this.log().debug({ timer: key, dueMs }, "reminder left for the passivated actor's next timer tick");
  }

  /**
   * The ids a reminder of timer `key` may wait under: its due time's tick, and its last tick
   * (a reminder the running incarnation found and recorded, perhaps not yet due by Redis' clock).
   */
  private async reminderIds(key: string): Promise<string[]> {
    const [text, due, last] = await Promise.all([
      this.redis.hget(this.specsKey, key),
      this.redis.zscore(this.dueKey, key),
      this.redis.hget(this.lastKey, key),
    ]);
    const spec = text === null ? undefined : parseSpec(text);
    if (!spec) return [];
    const ids = due === null ? [] : [tickId(key, spec.gen, Number(due))];
    // Only a tick of this generation (`timer:<key>:<gen>:`) can be its reminder.
    if (last?.startsWith(`timer:${key}:${spec.gen}:`)) ids.push(last);
    return ids;
  }

  /**
   * Cancels the reminders of a timer that was cancelled or replaced, if they still wait (a tick
   * already moved into the inbox stays, as any tick already sent).
   */
  private async cancelReminders(ids: readonly string[]): Promise<void> {
    for (const id of ids) {
      const outcome = await this.host.scheduler.cancel(this.actor, id);
      if (outcome === "cancelled") {
        this.log().debug({ msgId: id }, "the waiting reminder of a cancelled or replaced timer is cancelled");
      }
    }
  }

  /** The keys timer-start.lua and timer-cancel.lua take: specs, due, last tick, presence. */
  private changeKeys(): string[] {
    return [this.specsKey, this.dueKey, this.lastKey, this.host.mailbox.keys.status(this.actor)];
  }

  /** Where and what timer-start/cancel publish so the actor's other incarnations re-arm. */
  private hintArgs(): string[] {
    const keys = this.host.mailbox.keys;
    return [keys.channel(this.actor), keys.wakeChannel(this.actor) ?? "", TIMERS_CHANGED];
  }

  private async runCancel(key: string, conditional: "0" | "1", expected: string) {
    const code = await this.scripts.run("timer-cancel", this.changeKeys(), [
      key,
      conditional,
      expected,
      ...this.hintArgs(),
    ]);
    const outcome = outcomeOf(CANCEL_OUTCOME, code, "timer-cancel.lua");
    if (outcome === "refused") {
      throw new TimerScriptError(
        `timer-cancel.lua refused timer "${key}" of actor "${this.actor}": a bug in redactor`,
      );
    }
    return outcome;
  }

  async list(): Promise<TimerInfo[]> {
    const [specs, due] = await Promise.all([
      this.redis.hgetall(this.specsKey),
      this.redis.zrange(this.dueKey, 0, -1, "WITHSCORES"),
    ]);
    const dueOf = new Map<string, number>();
    for (let i = 0; i + 1 < due.length; i += 2) dueOf.set(due[i] as string, Number(due[i + 1]));
    const infos: TimerInfo[] = [];
    for (const [key, text] of Object.entries(specs)) {
      const spec = parseSpec(text);
      if (!spec) continue;
      infos.push({
        key,
        type: spec.type,
        ...(spec.everyMs !== undefined ? { everyMs: spec.everyMs } : { cron: spec.cron, tz: spec.tz }),
        missed: spec.missed,
        priority: spec.priority,
        nextDueMs: dueOf.get(key) ?? null,
      });
    }
    return infos.sort((a, b) => (a.nextDueMs ?? Infinity) - (b.nextDueMs ?? Infinity));
  }

  /**
   * The actor serves now: sends what is due (ticks missed while it was down, under each timer's
   * policy) and arms the host timer for the earliest. Never throws: a Redis failure is logged
   * and retried.
   */
  async run(): Promise<void> {
    if (this.stopped) return;
    this.running = true;
    await this.poke();
  }

  /**
   * The actor's timers changed in Redis (started or cancelled by another incarnation, in this
   * process or another: the TIMERS_CHANGED hint, src/wakeups.ts): the head is read again and the
   * host timer re-armed. One command when nothing is due; nothing before `run`.
   */
  changed(): void {
    void this.poke();
  }

  /** The incarnation ended: the host timer is cleared, and nothing is sent or armed any more. */
  stop(): void {
    this.stopped = true;
    this.running = false;
    this.clock.clearTimeout(this.armed);
    this.armed = undefined;
  }

  /** Fires what is due and re-arms; one pass at a time, another after it if asked meanwhile. */
  private poke(): Promise<void> {
    if (!this.running || this.stopped) return Promise.resolve();
    if (this.pumping) {
      this.again = true;
      return this.pumping;
    }
    this.pumping = (async () => {
      try {
        do {
          this.again = false;
          await this.pump();
        } while (this.again && !this.stopped);
      } finally {
        this.pumping = undefined;
      }
    })();
    return this.pumping;
  }

  /**
   * Reads the head of the due set; while it is due, fires the due timers (FIRE_BATCH at a time);
   * then arms the host timer for the new head. One command when nothing is due.
   */
  private async pump(): Promise<void> {
    try {
      for (;;) {
        if (this.stopped) return;
        const head = await this.redis.zrange(this.dueKey, 0, 0, "WITHSCORES");
        if (this.stopped) return;
        const now = Math.floor(this.clock.now());
        const headDue = head.length >= 2 ? Number(head[1]) : undefined;
        if (headDue === undefined || headDue > now) {
          this.arm(headDue);
          return;
        }
        const due = await this.redis.zrangebyscore(
          this.dueKey,
          "-inf",
          now,
          "WITHSCORES",
          "LIMIT",
          0,
          FIRE_BATCH,
        );
        const keys: string[] = [];
        const dues: number[] = [];
        for (let i = 0; i + 1 < due.length; i += 2) {
          keys.push(due[i] as string);
          dues.push(Number(due[i + 1]));
        }
        const [specs, lasts] =
          keys.length > 0
            ? await Promise.all([
                this.redis.hmget(this.specsKey, ...keys),
                this.redis.hmget(this.lastKey, ...keys),
              ])
            : [[], []];
        for (const [i, key] of keys.entries()) {
          if (this.stopped) return;
          await this.fire(key, dues[i] as number, specs[i] ?? null, lasts[i] ?? null, now);
        }
      }
    } catch (err) {
      if (this.stopped) return;
      this.log().error({ err }, `actor timers failed; looking again in ${RETRY_MS} ms`);
      this.clock.clearTimeout(this.armed);
      this.armed = this.clock.setTimeout(() => void this.poke(), RETRY_MS);
      this.armed.unref();
    }
  }

  /** Arms the one host timer for `dueMs` (none when undefined). */
  private arm(dueMs: number | undefined): void {
    this.clock.clearTimeout(this.armed);
    this.armed = undefined;
    if (dueMs === undefined) return;
    // At least 1 ms: a host timer that fires a hair early finds nothing due and comes back.
    this.armed = this.clock.setTimeout(() => void this.poke(), Math.max(1, dueMs - this.clock.now()));
    this.armed.unref();
  }

  /**
   * Fires one due timer: a compare-and-set on its due time, its generation and its last tick
   * (`lastId`, null when none is recorded), held while that tick waits under skip and once.
   */
  private async fire(
    key: string,
    dueMs: number,
    text: string | null,
    lastId: string | null,
    nowMs: number,
  ): Promise<void> {
    const spec = text === null ? undefined : parseSpec(text);
    let due: DueTicks | undefined;
    try {
      due = spec && dueTicks(spec, dueMs, nowMs);
    } catch (err) {
      this.log().error({ err, timer: key }, "a durable timer's schedule cannot be computed");
    }
    if (!spec || !due) {
      // A due time without a usable spec: removed, unless someone has (re)started it meanwhile.
      this.log().error(
        { timer: key },
        "a durable timer's spec is missing or unreadable; the timer is removed",
      );
      await this.runCancel(key, "1", text ?? "");
      return;
    }
    const { ticks, dropped, nextDueMs } = due;
    let encoded: EncodedMessage[] = [];
    try {
      const payload = payloadOf(spec);
      encoded = ticks.map((at) =>
        this.host.mailbox.encode(
          this.tickEnvelope(tickId(key, spec.gen, at), spec.type, payload, spec.priority, at),
        ),
      );
    } catch (err) {
      // Cannot happen for a spec written by `start` (it encoded the same payload); the timer
      // moves on without sending rather than trying again forever.
      this.log().error({ err, timer: key }, "a durable timer's tick could not be encoded; tick not sent");
      encoded = [];
    }
    const keys = this.host.mailbox.keys;
    const config = this.host.mailbox.config;
    const scriptKeys = [
      this.specsKey,
      this.dueKey,
      this.lastKey,
      keys.inbox(this.actor),
      keys.outbox(this.actor),
      keys.status(this.actor),
      lastId === null ? this.lastKey : keys.message(this.actor, lastId),
      keys.message(this.actor, tickId(key, spec.gen, dueMs)),
      ...encoded.map((m) => keys.message(this.actor, m.envelope.id)),
    ];
    const args: (string | number)[] = [
      key,
      dueMs,
      spec.gen,
      nextDueMs,
      config.messageTtlSeconds,
      config.outboxCap,
      keys.channel(this.actor),
      keys.wakeChannel(this.actor) ?? "",
      STATUS.pending,
      lastId ?? "",
      spec.missed === "all" ? "0" : "1",
      tickId(key, spec.gen, dueMs),
    ];
    for (const m of encoded) args.push(...this.host.mailbox.sendArgs(m));
    const [code, sent] = (await this.scripts.run("timer-fire", scriptKeys, args)) as [number, number];
    const outcome = outcomeOf(FIRE_OUTCOME, code, "timer-fire.lua");
    if (outcome === "refused") {
      throw new TimerScriptError(
        `timer-fire.lua refused timer "${key}" of actor "${this.actor}": a bug in redactor`,
      );
    }
    if (outcome !== "fired" && outcome !== "held" && outcome !== "reminded") {
      this.log().debug(
        { timer: key, dueMs, outcome },
        "timer tick already fired, cancelled or restarted elsewhere",
      );
      return;
    }
    if (outcome === "held") {
      this.log().info(
        { timer: key, dueMs, dropped: dropped + ticks.length, missed: spec.missed, waiting: lastId },
        "timer tick not sent: its previous tick has not started yet (the handler is slower than the period)",
      );
    } else if (outcome === "reminded") {
      this.log().debug(
        { timer: key, dueMs, sent: Number(sent) },
        "timer tick delivered by its reminder (scheduled while the actor was passivated); not sent again",
      );
    } else if (dropped > 0) {
      this.log().info(
        { timer: key, dueMs, sent: Number(sent), dropped, missed: spec.missed },
        "missed timer ticks not sent, by the timer's missed-tick policy",
      );
    }
    this.host.events.emit("timer.fired", {
      actor: this.actor,
      key,
      // The tick sent last (under "once" the latest due one), else the one that fell due.
      dueMs: outcome === "fired" && ticks.length > 0 ? (ticks[ticks.length - 1] as number) : dueMs,
      ticks: Number(sent),
      nextDueMs,
    });
  }

  private tickEnvelope(
    id: string,
    type: string,
    payload: unknown,
    priority: Priority,
    atMs: number,
  ): Envelope {
    return {
      id,
      sender: this.actor,
      recipient: this.actor,
      message_type: type,
      payload,
      priority,
      // The tick's own due time: a late tick is older than what came after it.
      timestamp: atMs / 1000,
      reply_to: null,
      timeout: null,
    };
  }
}

/** A spec's payload, decoded as the envelope encodes it. */
function payloadOf(spec: TimerSpec): unknown {
  return spec.payload_meta === undefined
    ? spec.payload
    : superjson.deserialize({ json: spec.payload as never, meta: spec.payload_meta as never });
}

/** A stored spec, or undefined when it is not one this version can read. */
function parseSpec(text: string): TimerSpec | undefined {
  try {
    const spec = JSON.parse(text) as TimerSpec;
    if (typeof spec !== "object" || spec === null || typeof spec.gen !== "string") return undefined;
    if (typeof spec.type !== "string" || !("payload" in spec)) return undefined;
    if (!["skip", "once", "all"].includes(spec.missed) || !isPriority(spec.priority)) return undefined;
    const every = typeof spec.everyMs === "number" && Number.isInteger(spec.everyMs) && spec.everyMs >= 1;
    const cron = typeof spec.cron === "string";
    if (every === cron) return undefined;
    return spec;
  } catch {
    return undefined;
  }
}
