/**
 * Supervisors group actors under a restart policy. This version starts its children in order
 * and stops them in reverse order; restarting crashed children is not implemented yet, so the
 * strategy and intensity settings are recorded but not acted upon.
 */
import type { ActorDefinition } from "./actor.js";

/** OTP restart strategies. */
export type SupervisorStrategy = "one_for_one" | "one_for_all" | "rest_for_one";

/** A supervisor's child: an actor definition or a nested supervisor. */
export type ChildSpec = ActorDefinition | SupervisorSpec;

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
   * More than this many restarts within `withinMs` gives up and escalates.
   * @default 3
   */
  maxRestarts?: number;
  /**
   * The window of `maxRestarts`, ms.
   * @default 5000
   */
  withinMs?: number;
  /** Started in order, stopped in reverse order. */
  children: ChildSpec[];
}

/** A supervisor specification, spawned with `system.spawn`. */
export interface SupervisorSpec extends Required<SupervisorOptions> {
  readonly kind: "supervisor";
}

/** A running supervisor. */
export interface SupervisorRef {
  readonly id: string;
  /** Ids of the actors under it, in start order, nested supervisors flattened. */
  readonly actorIds: readonly string[];
  /** Stops its children in reverse order. */
  stop(): Promise<void>;
}

/** Describes a supervisor (OTP semantics; see SupervisorOptions for the defaults). */
export function supervisor(options: SupervisorOptions): SupervisorSpec {
  return {
    kind: "supervisor",
    id: options.id,
    strategy: options.strategy ?? "one_for_one",
    maxRestarts: options.maxRestarts ?? 3,
    withinMs: options.withinMs ?? 5000,
    children: options.children,
  };
}

/** True when `spec` is a supervisor rather than an actor. */
export function isSupervisorSpec(spec: ChildSpec): spec is SupervisorSpec {
  return (spec as { kind?: string }).kind === "supervisor";
}
