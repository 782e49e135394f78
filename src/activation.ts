/**
 * Single activation: at most one process runs a given actor id at a time, whatever the number
 * of processes that spawn it. The actor's activation key (`activation:<app>`) names its owner,
 * a node id; the others stand by. Ownership is fenced inside Redis: the claim script refuses a
 * claim by any process the key does not name (src/lua/claim.lua), so a process that lost
 * ownership cannot take a message even if it does not know yet.
 *
 * The owner's lease is its heartbeat key, which its heartbeat thread keeps alive: ownership
 * costs no write per actor and per period, a blocked event loop keeps it (as it keeps message
 * leases), and it ends when the process dies, stops (it releases its actors) or freezes past
 * three heartbeat periods. A process standing by tries again every heartbeat period: it reads
 * the key, checks the owner's heartbeat key, and when that is gone swaps the key to itself
 * only if it still names that dead owner (src/lua/activate.lua). Takeover therefore comes
 * within about three heartbeat periods of the owner's last beat, plus one period at most.
 *
 * What a frozen owner cannot be stopped from doing is finishing the handler it was in when it
 * froze: when it resumes, that handler's outcome is refused (its message lease was taken back)
 * and it starts nothing more: its next claim is refused and it stands by again.
 */
import type { Logger } from "pino";
import type { HostClock, TimerHandle } from "./clock.js";
import type { RedisClient } from "./cluster.js";
import type { Keyspace } from "./keyspace.js";
import { Scripts } from "./scripts.js";

/** Outcome codes of src/lua/activate.lua. */
export const ACTIVATION = {
  /** acquire: the key names the caller. release: released. */
  owned: 1,
  /** acquire: another process owns it. release: the key did not name the caller. */
  held: 0,
} as const;

/** How a process stands by for one actor. */
interface StandBy {
  timer: TimerHandle | undefined;
  /** Called once when this process became the owner, with the node it took over from ('' = none). */
  owned: (previous: string) => void;
}

/** The activation keys of one process's single-activation actors. */
export class Activations {
  private readonly scripts: Scripts;
  private readonly standing = new Map<string, StandBy>();

  constructor(
    private readonly redis: RedisClient,
    private readonly keys: Keyspace,
    /** This process's node id: what its activation keys hold. */
    readonly nodeId: string,
    /** How often a process standing by tries again, ms (the heartbeat period). */
    private readonly periodMs: number,
    private readonly log: Logger,
    /** What the stand-by retries run on (the system's `clock` option). */
    private readonly clock: HostClock,
  ) {
    this.scripts = new Scripts(redis);
  }

  private async call(app: string, mode: "acquire" | "release", deadOwner = ""): Promise<[number, string]> {
    const [code, owner] = (await this.scripts.run(
      "activate",
      [this.keys.activation(app)],
      [mode, this.nodeId, deadOwner],
    )) as [number, string];
    return [Number(code), String(owner)];
  }

  /**
   * Tries to become the owner of `app`. Resolves with `{ owner: null, previous }` when this
   * process owns it now (`previous`: the dead owner it took over from, '' when there was none
   * or it was this process already), else with the live owner's node id.
   */
  async acquire(app: string): Promise<{ owner: string | null; previous: string }> {
    const [code, owner] = await this.call(app, "acquire");
    if (code === ACTIVATION.owned) return { owner: null, previous: "" };
    // Held by another process: alive while its heartbeat key is.
    if ((await this.redis.exists(this.keys.heartbeat(owner))) === 1) return { owner, previous: "" };
    const [again, now] = await this.call(app, "acquire", owner);
    return again === ACTIVATION.owned ? { owner: null, previous: owner } : { owner: now, previous: "" };
  }

  /** Gives up ownership of `app` (if this process has it), so a process standing by takes over at once. */
  async release(app: string): Promise<void> {
    this.cancel(app);
    await this.call(app, "release");
  }

  /**
   * Stands by for `app`: tries to become its owner every heartbeat period, and calls `owned`
   * once it is (then stops trying). Replaces an earlier stand-by for the same app.
   */
  standBy(app: string, owned: (previous: string) => void): void {
    this.cancel(app);
    const entry: StandBy = { timer: undefined, owned };
    this.standing.set(app, entry);
    const tryAgain = () => {
      entry.timer = this.clock.setTimeout(() => void attempt(), this.periodMs);
      entry.timer.unref();
    };
    const attempt = async () => {
      if (this.standing.get(app) !== entry) return;
      try {
        const { owner, previous } = await this.acquire(app);
        if (this.standing.get(app) !== entry) {
          // Cancelled while the attempt was in flight: what it won goes back.
          if (owner === null) await this.call(app, "release");
          return;
        }
        if (owner === null) {
          this.standing.delete(app);
          entry.owned(previous);
          return;
        }
      } catch (err) {
        this.log.debug({ err, actor: app }, "could not check the actor's owner; trying again next period");
      }
      tryAgain();
    };
    tryAgain();
  }

  /** Stops standing by for `app`. */
  cancel(app: string): void {
    const entry = this.standing.get(app);
    if (!entry) return;
    this.clock.clearTimeout(entry.timer);
    this.standing.delete(app);
  }

  /** The apps this process stands by for. */
  standingBy(): string[] {
    return [...this.standing.keys()];
  }

  /** Stops standing by for everything. */
  stop(): void {
    for (const app of [...this.standing.keys()]) this.cancel(app);
  }
}
