/**
 * A supervision tree, with OTP's meaning:
 *
 *   station (one_for_one)
 *   ├── flight-log                     a logger
 *   ├── drone (rest_for_one, at most 2 restarts in 10 s)
 *   │   ├── radio-link                 crashes on a corrupt packet
 *   │   └── HEAR_FC                    depends on the link: restarted with it
 *   └── station-echo
 *
 * A crash restarts the crashed actor with fresh state (and, under rest_for_one, the actors
 * started after it); too many crashes in the window and the supervisor gives up, and its own
 * supervisor restarts the whole subtree. Siblings under one_for_one are never touched.
 *
 *   npm run example:supervision
 */
import { pino } from "pino";
import { createSystem, defineActor, supervisor } from "redactor";
import { echo } from "../actors/echo.js";
import { type HearFcProtocol, hearFc } from "../actors/hear-fc.js";
import { logger } from "../actors/logger.js";
import { findRedis } from "./support/redis.js";

type LinkProtocol = {
  packet: { payload: { n: number; corrupt?: boolean } };
  stats: { payload: Record<string, never>; reply: { packets: number; incarnation: number } };
};

let incarnations = 0;

const radioLink = defineActor<LinkProtocol, { packets: number; incarnation: number }>({
  id: "radio-link",
  // A corrupt packet will not get better: dead-letter it at once instead of retrying it.
  maxAttempts: 1,
  setup: () => {
    incarnations += 1;
    return { packets: 0, incarnation: incarnations };
  },
  handlers: {
    packet: (p, ctx) => {
      if (p.corrupt) throw new Error(`corrupt packet ${p.n}`);
      ctx.state.packets += 1;
    },
    stats: (_p, ctx) => ({ packets: ctx.state.packets, incarnation: ctx.state.incarnation }),
  },
});

const flightLog = logger({ id: "flight-log" });

const tree = supervisor({
  id: "station",
  strategy: "one_for_one",
  children: [
    flightLog.definition,
    supervisor({
      id: "drone",
      strategy: "rest_for_one",
      maxRestarts: 2,
      withinMs: 10_000,
      backoff: { minMs: 50, maxMs: 400 },
      children: [radioLink, hearFc({ controllerId: "flight-log", telemetryHz: 0 })],
    }),
    echo({ id: "station-echo" }),
  ],
});

const redis = await findRedis();
console.log(`Redis: ${redis.description}`);
const system = await createSystem({
  redis: redis.url,
  appId: "supervision-example",
  // The runtime logs each restart as a warning; this example prints its own account instead.
  logger: pino({ level: "fatal" }),
});

/** The first clause of an error: what happened, without the advice. */
const brief = (text: string) => text.split(";")[0] ?? text;

const started: string[] = [];
system.events.on("actor.started", (e) => started.push(e.actor));
system.events.on("actor.stopped", (e) => {
  if (e.reason !== "stop") console.log(`   ${e.actor} stopped: ${e.reason}`);
});
system.events.on("actor.restarted", (e) =>
  console.log(
    `   supervisor "${e.supervisor}" restarts ${e.actor} in ${Math.round(e.delayMs)} ms (${brief(e.reason)})`,
  ),
);
system.events.on("supervisor.failed", (e) =>
  console.log(`   supervisor "${e.supervisor}" failed: ${brief(e.error)}`),
);

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
async function until(what: string, check: () => boolean): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}
const startsOf = (id: string) => started.filter((a) => a === id).length;

try {
  const station = await system.spawn(tree);
  console.log(`1. the tree started its actors in order: ${started.join(", ")}`);

  const link = system.ref<LinkProtocol>("radio-link");
  for (let n = 1; n <= 3; n++) await link.tell("packet", { n });
  let stats = await link.ask("stats", {});
  console.log(`   radio-link: ${stats.packets} packets, incarnation ${stats.incarnation}`);

  console.log(
    "2. a corrupt packet crashes radio-link; rest_for_one restarts it and HEAR_FC, started after it",
  );
  const corrupt = await link.tell("packet", { n: 4, corrupt: true });
  await until("the restart", () => startsOf("HEAR_FC") === 2);
  stats = await link.ask("stats", {});
  console.log(
    `   radio-link: ${stats.packets} packets, incarnation ${stats.incarnation}: a restart starts from fresh state`,
  );
  console.log(`   the corrupt packet is ${await system.messageStatus(corrupt)} (dead-lettered, not retried)`);

  console.log("3. two more crashes: more than 2 restarts in 10 s, so drone gives up and station restarts it");
  await link.tell("packet", { n: 5, corrupt: true });
  await until("the second restart", () => startsOf("HEAR_FC") === 3);
  await link.tell("packet", { n: 6, corrupt: true });
  await until("the subtree's restart", () => startsOf("HEAR_FC") === 4);
  const health = await system.ref<HearFcProtocol>("HEAR_FC").ask("health_check", {});
  console.log(`   HEAR_FC is back: ${health.status}, up ${health.uptime} s`);
  console.log(
    `   flight-log started ${startsOf("flight-log")} time, station-echo ${startsOf("station-echo")}: ` +
      "one_for_one left the siblings alone",
  );

  console.log("4. stopping the tree stops its actors in reverse order");
  const stopped: string[] = [];
  system.events.on("actor.stopped", (e) => stopped.push(e.actor));
  await station.stop();
  console.log(`   ${stopped.join(", ")}`);
} finally {
  await system.shutdown();
  await redis.stop();
}
