/**
 * The redactor side of the scenarios: systems as a user would create them (silent logger,
 * defaults unless a scenario says otherwise), a no-op actor, and completion counting through
 * the public event API.
 */
import { pino } from "pino";
import {
  type ActorDefinition,
  type ActorSystem,
  createSystem,
  defineActor,
  Keyspace,
  type SystemOptions,
} from "../src/index.js";
import type { BenchEnv } from "./model.js";
import { Countdown, waitUntil } from "./util.js";

/** The protocol of the benchmark actors: a small tell and a small request. */
export type BenchProtocol = {
  noop: { payload: { i: number } };
  echo: { payload: { i: number }; reply: { i: number } };
};

const silent = pino({ level: "silent" });
const keys = new Keyspace();

/** Starts a system on the bench server with a silent logger. */
export function benchSystem(
  env: Pick<BenchEnv, "redisUrl">,
  appId: string,
  options: Partial<SystemOptions> = {},
) {
  return createSystem({ appId, redis: env.redisUrl, logger: silent, ...options });
}

/** An actor whose handlers do nothing (`noop`) or return their payload (`echo`). */
export function noopActor(
  id: string,
  onStart?: (payload: { i: number }) => void,
): ActorDefinition<BenchProtocol, undefined> {
  return defineActor<BenchProtocol, undefined>({
    id,
    handlers: {
      noop: async (payload) => {
        onStart?.(payload);
        return undefined;
      },
      echo: async (payload) => payload,
    },
  });
}

/** Counts `message.completed` events of one actor. */
export function completions(system: ActorSystem, actor: string): Countdown {
  const countdown = new Countdown();
  system.events.on("message.completed", (e) => {
    if (e.actor === actor) countdown.hit();
  });
  return countdown;
}

/**
 * Waits until `actor` holds no claimed message. The completion event fires when a handler
 * returns; its status write follows within a few ms (outcomes are batched), and a run only
 * counts as done once Redis has every status.
 */
export async function statusesWritten(env: BenchEnv, actor: string): Promise<void> {
  await waitUntil(async () => (await env.admin.zcard(keys.processing(actor))) === 0, "status writes");
}

/**
 * Spawns `definition` and stops it at once: its presence hash then tells senders that its inbox
 * is a redactor inbox (canonical scores), while nothing consumes it, so a backlog can be queued.
 */
export async function registerIdle(system: ActorSystem, definition: ActorDefinition): Promise<void> {
  await system.spawn(definition);
  await system.stop(definition.id);
}
