/** Every scenario, in the order of the table (and of a full run). */
import { fleet } from "../fleet.js";
import type { AnyScenario } from "../model.js";
import { ask } from "./ask.js";
import { cluster } from "./cluster.js";
import { drain } from "./drain.js";
import { idle } from "./idle.js";
import { live } from "./live.js";
import { memory } from "./memory.js";
import { priority } from "./priority.js";
import { send } from "./send.js";
import { wakeup } from "./wakeup.js";

/** The scenarios by name. */
export const SCENARIOS: readonly AnyScenario[] = [
  drain,
  live,
  send,
  ask,
  idle,
  wakeup,
  priority,
  memory,
  cluster,
  fleet,
];

/** Looks a scenario up by name; throws listing the names when it is unknown. */
export function scenarioNamed(name: string): AnyScenario {
  const found = SCENARIOS.find((s) => s.name === name);
  if (!found) {
    throw new Error(`unknown scenario "${name}"; scenarios: ${SCENARIOS.map((s) => s.name).join(", ")}`);
  }
  return found;
}
