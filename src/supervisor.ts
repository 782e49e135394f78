/**
 * Supervision, with OTP's meaning. A supervisor starts its children in order and stops them in
 * reverse order. When a child crashes it restarts it (one_for_one), all children
 * (one_for_all), or it and the children started after it (rest_for_one), after an
 * exponential backoff. More than `maxRestarts` restarts within `withinMs` means the trouble is
 * not going away: the supervisor stops its children and fails, and its own supervisor decides.
 * The system's root supervisor failing stops the system.
 */
import {
  type ActorDefinition,
  type FamilyDefinition,
  isFamilyDefinition,
  type RestartType,
} from "./actor.js";
import { type BackoffOptions, backoffDelay } from "./backoff.js";
import type { HostClock } from "./clock.js";
import { InvalidOptionError, RedactorError, StateLoadError } from "./errors.js";
import type { SystemEvents } from "./events.js";
import { checkId } from "./ids.js";
import { checkBackoff, checkNumber, checkOneOf, requireObject } from "./options.js";

/** OTP restart strategies. */
export type SupervisorStrategy = "one_for_one" | "one_for_all" | "rest_for_one";

/** A supervisor's child: an actor definition or a nested supervisor. */
export type ChildSpec = ActorDefinition | FamilyDefinition | SupervisorSpec;

/** What `supervisor()` takes. */
export interface SupervisorOptions {
  /** A name for logs and events. */
  id: string;
  /**
   * Which children restart when one crashes.
   * @default "one_for_one"
   */
  strategy?: SupervisorStrategy;
  /**
   * More than this many restarts within `withinMs` stops the children and fails the supervisor.
   * @default 3
   */
  maxRestarts?: number;
  /**
   * The window of `maxRestarts`, ms.
   * @default 5000
   */
  withinMs?: number;
  /**
   * Delay before a restart; it grows with the restarts inside the window.
   * @default { minMs: 100, maxMs: 10000, factor: 2, jitter: 0.2 }
   */
  backoff?: BackoffOptions;
  /**
   * When its own supervisor restarts it after it failed.
   * @default "permanent"
   */
  restart?: RestartType;
  /** Started in order, stopped in reverse order. */
  children: ChildSpec[];
}

/** A supervisor specification, spawned with `system.spawn` or nested in another. */
export interface SupervisorSpec extends Required<SupervisorOptions> {
  readonly kind: "supervisor";
}

/** A running supervisor. */
export interface SupervisorRef {
  readonly id: string;
  /** Ids of the actors under it now, in start order, nested supervisors flattened. */
  readonly actorIds: readonly string[];
  /** Stops its children in reverse order; it is not restarted. */
  stop(): Promise<void>;
}

/** Describes a supervisor (OTP semantics; see SupervisorOptions for the defaults). */
export function supervisor(options: SupervisorOptions): SupervisorSpec {
  checkSupervisorOptions(options);
  return {
    kind: "supervisor",
    id: options.id,
    strategy: options.strategy ?? "one_for_one",
    maxRestarts: options.maxRestarts ?? 3,
    withinMs: options.withinMs ?? 5000,
    backoff: options.backoff ?? {},
    restart: options.restart ?? "permanent",
    children: options.children,
  };
}

/**
 * Checks a supervisor's own options (not its children's): id, strategy, intensity, backoff.
 * @throws InvalidIdError for the id, InvalidOptionError for an option.
 */
function checkSupervisorOptions(options: SupervisorOptions): void {
  requireObject("supervisor options", options);
  // A supervisor's id names it in logs and events only: no key is built from it.
  checkId(options.id, "supervisor id", { reserved: false });
  const at = (option: string) => `${option} of supervisor "${options.id}"`;
  const strategies = ["one_for_one", "one_for_all", "rest_for_one"];
  checkOneOf(at("strategy"), options.strategy, strategies, '"one_for_one"');
  checkNumber(at("maxRestarts"), options.maxRestarts, { integer: true, min: 0 }, "3");
  checkNumber(at("withinMs"), options.withinMs, { above: 0, unit: "ms" }, "5000");
  checkBackoff(at("backoff"), options.backoff);
  checkOneOf(at("restart"), options.restart, ["permanent", "transient", "temporary"], '"permanent"');
  if (!Array.isArray(options.children)) {
    throw new InvalidOptionError(
      at("children"),
      options.children,
      `invalid option ${at("children")}: it must be an array of actor definitions and supervisors`,
    );
  }
}

/**
 * Checks a spec and everything under it before anything starts, so that a bad id deep in a
 * tree does not leave half of it running: every supervisor's options and, through
 * `checkActor`, every actor definition.
 * @throws InvalidIdError or InvalidOptionError
 */
export function checkSpecTree(
  spec: ChildSpec,
  checkActor: (definition: ActorDefinition | FamilyDefinition) => void,
): void {
  if (spec === null || typeof spec !== "object") {
    const what = "spawn takes an actor definition (defineActor) or a supervisor spec (supervisor)";
    throw new InvalidOptionError("spec", spec, what);
  }
  if (!isSupervisorSpec(spec)) {
    checkActor(spec);
    return;
  }
  checkSupervisorOptions(spec);
  for (const child of spec.children) checkSpecTree(child, checkActor);
}

/** True when `spec` is a supervisor rather than an actor. */
export function isSupervisorSpec(spec: ChildSpec): spec is SupervisorSpec {
  return (spec as { kind?: string }).kind === "supervisor";
}

/** A supervisor gave up: too many restarts in too little time. */
export class RestartIntensityError extends RedactorError {
  override name = "RestartIntensityError";
  constructor(
    readonly supervisorId: string,
    readonly restarts: number,
    readonly withinMs: number,
    override readonly cause: Error,
  ) {
    super(
      `supervisor "${supervisorId}" gave up after ${restarts} restarts within ${withinMs} ms ` +
        `(last: ${cause.message}); fix the failing actor or raise maxRestarts / withinMs`,
    );
  }
}

/** Why a child ended on its own. */
export type ExitReason =
  /** It crashed (handler failure with directive restart, or setup failed): restart it. */
  | { kind: "crash"; error: Error }
  /**
   * It ended normally (directive stop): only a `permanent` child is restarted, as in OTP,
   * where a permanent child is always restarted.
   */
  | { kind: "stop"; error: Error }
  /** Its failure is its supervisor's failure (directive escalate). */
  | { kind: "escalate"; error: Error }
  /**
   * It cannot run in this process, and starting it again would fail the same way: its saved
   * state cannot be loaded (StateLoadError at a restart or a takeover, src/state.ts). It is taken
   * out of its supervisor's children, never restarted, and counts as no restart; its siblings
   * run on. (At spawn the same error rejects the spawn instead.)
   */
  | { kind: "gave-up"; error: StateLoadError };

/** How a child whose start threw `err` ended: it gave up on a state it cannot load, else it crashed. */
export function startFailure(err: unknown): ExitReason {
  const error = err instanceof Error ? err : new Error(String(err));
  return error instanceof StateLoadError ? { kind: "gave-up", error } : { kind: "crash", error };
}

/** Something a supervisor supervises. */
export interface Child {
  readonly id: string;
  readonly restartType: RestartType;
  /** The actors under it now. */
  readonly actorIds: string[];
  /** How many times it has been started: tells an old incarnation's exit from the current one's. */
  readonly generation: number;
  /** Starts a fresh incarnation. */
  start(): Promise<void>;
  /** Stops it on purpose (no exit is reported). */
  stop(deadlineMs: number): Promise<void>;
}

/** Whoever a supervisor reports its own end to. */
export interface ExitListener {
  /** `generation` is the child's at the time it ended; a report from an older one is ignored. */
  childExited(child: Child, reason: ExitReason, generation: number): void;
}

/** What supervision needs from the system. */
export interface SupervisionHost {
  /** Builds the runtime of an actor child, reporting its own end to `parent`. */
  actorChild(definition: ActorDefinition, parent: ExitListener): Child;
  /** Builds the runtime of an actor family's pool in this process (src/family.ts). */
  familyChild(definition: FamilyDefinition, parent: ExitListener): Child;
  /** How long a stop may let handlers finish, ms. */
  readonly shutdownTimeoutMs: number;
  /**
   * The clock of restart backoff and of the restart-intensity window (the system's `clock`
   * option): a SimulatedClock runs both in virtual time.
   */
  readonly hostClock: HostClock;
  /** Observability. */
  restarted(info: SystemEvents["actor.restarted"]): void;
  supervisorFailed(info: { supervisor: string; error: Error }): void;
  /** Supervisor `supervisor` gave up an actor that cannot load its saved state (`error`). */
  gaveUp(info: { supervisor: string; error: StateLoadError }): void;
}

/** Resolves after `ms` ms of `clock`'s time. */
const sleep = (clock: HostClock, ms: number) =>
  new Promise<void>((resolve) => {
    clock.setTimeout(resolve, ms).unref();
  });

/** A running supervisor. */
export class SupervisorRuntime implements Child, ExitListener {
  readonly id: string;
  readonly restartType: RestartType;
  private children: Child[] = [];
  private restarts: number[] = [];
  generation = 0;
  private state: "idle" | "running" | "stopping" | "failed" = "idle";
  /** Exits are handled one at a time, in order. */
  private queue: Promise<void> = Promise.resolve();

  constructor(
    private readonly host: SupervisionHost,
    readonly spec: SupervisorSpec,
    private readonly parent: ExitListener,
  ) {
    this.id = spec.id;
    this.restartType = spec.restart;
  }

  get actorIds(): string[] {
    return this.children.flatMap((c) => c.actorIds);
  }

  /** Direct children, in start order. */
  get childList(): readonly Child[] {
    return this.children;
  }

  private build(spec: ChildSpec): Child {
    if (isSupervisorSpec(spec)) return new SupervisorRuntime(this.host, spec, this);
    return isFamilyDefinition(spec) ? this.host.familyChild(spec, this) : this.host.actorChild(spec, this);
  }

  /** Starts the children in order; if one fails to start, stops those started, in reverse. */
  async start(): Promise<void> {
    this.generation += 1;
    this.children = [];
    this.restarts = [];
    this.state = "running";
    try {
      for (const spec of this.spec.children) {
        try {
          await this.add(spec);
        } catch (err) {
          // At a restart (not the first start, whose spawn rejects), a child that cannot load its
          // saved state is left out; the rest of the group starts.
          const exit = startFailure(err);
          if (this.generation === 1 || exit.kind !== "gave-up") throw err;
          this.host.gaveUp({ supervisor: this.id, error: exit.error });
        }
      }
    } catch (err) {
      await this.stop(Date.now() + this.host.shutdownTimeoutMs);
      throw err;
    }
  }

  /** Starts one more child, after the others. */
  async add(spec: ChildSpec): Promise<Child> {
    const child = this.build(spec);
    await child.start();
    this.children.push(child);
    return child;
  }

  /** Stops one child on purpose and forgets it. */
  async remove(child: Child): Promise<void> {
    this.children = this.children.filter((c) => c !== child);
    await child.stop(Date.now() + this.host.shutdownTimeoutMs);
  }

  /** Stops the children in reverse start order. */
  async stop(deadlineMs: number): Promise<void> {
    if (this.state === "running") this.state = "stopping";
    for (const child of [...this.children].reverse()) await child.stop(deadlineMs);
  }

  /** The supervisor of actor `id` in this tree and the child that runs it, if any. */
  find(id: string): { supervisor: SupervisorRuntime; child: Child } | undefined {
    for (const child of this.children) {
      if (child instanceof SupervisorRuntime) {
        const found = child.find(id);
        if (found) return found;
      } else if (child.id === id) {
        return { supervisor: this, child };
      }
    }
    return undefined;
  }

  childExited(child: Child, reason: ExitReason, generation: number): void {
    this.queue = this.queue.then(() => this.handleExit(child, reason, generation)).catch(() => {});
  }

  private async handleExit(child: Child, reason: ExitReason, generation: number): Promise<void> {
    if (this.state !== "running" || !this.children.includes(child)) return;
    // Restarted since (one_for_all, rest_for_one): that exit was the old incarnation's, as in OTP.
    if (generation !== child.generation) return;
    if (reason.kind === "escalate") {
      await this.fail(reason.error);
      return;
    }
    if (reason.kind === "gave-up") {
      this.children = this.children.filter((c) => c !== child);
      this.host.gaveUp({ supervisor: this.id, error: reason.error });
      return;
    }
    const restart =
      child.restartType === "permanent" || (child.restartType === "transient" && reason.kind === "crash");
    if (!restart) {
      this.children = this.children.filter((c) => c !== child);
      return;
    }
    const now = this.host.hostClock.now();
    this.restarts = this.restarts.filter((t) => now - t < this.spec.withinMs);
    this.restarts.push(now);
    if (this.restarts.length > this.spec.maxRestarts) {
      await this.fail(
        new RestartIntensityError(this.id, this.restarts.length - 1, this.spec.withinMs, reason.error),
      );
      return;
    }
    const index = this.children.indexOf(child);
    const affected =
      this.spec.strategy === "one_for_one"
        ? [child]
        : this.spec.strategy === "one_for_all"
          ? [...this.children]
          : this.children.slice(index);
    const deadline = Date.now() + this.host.shutdownTimeoutMs;
    for (const other of [...affected].reverse()) if (other !== child) await other.stop(deadline);
    const attempt = this.restarts.length;
    const delayMs = backoffDelay(this.spec.backoff, attempt);
    for (const c of affected) {
      for (const id of c.actorIds.length > 0 ? c.actorIds : [c.id]) {
        this.host.restarted({
          actor: id,
          supervisor: this.id,
          reason: reason.error.message,
          attempt,
          delayMs,
        });
      }
    }
    await sleep(this.host.hostClock, delayMs);
    for (const c of affected) {
      if (this.state !== "running") return;
      // Stopped on purpose during the backoff: it stays stopped.
      if (!this.children.includes(c)) continue;
      try {
        await c.start();
      } catch (err) {
        // A child that cannot start has crashed again: that is one more restart to count (unless
        // it cannot load its saved state: that would never change, so it is given up).
        this.childExited(c, startFailure(err), c.generation);
      }
    }
  }

  /** Gives up: stops every child and reports the failure upward. */
  private async fail(error: Error): Promise<void> {
    this.state = "failed";
    for (const child of [...this.children].reverse())
      await child.stop(Date.now() + this.host.shutdownTimeoutMs);
    this.host.supervisorFailed({ supervisor: this.id, error });
    this.parent.childExited(this, { kind: "crash", error }, this.generation);
  }
}
