/**
 * How late scheduled messages arrive (issue 12): N messages with delays spread over 1–3 s (all sent within the first second),
 * sent by one system to an actor hosted by a second system (so delivery goes through the shared
 * index and the pub/sub hint, not only the sender's own timer). For each message, lateness =
 * when its handler started minus its due time (`at`), both read on this machine's clock, which
 * is also the clock of the throw-away Redis. Prints p50 / p99 / max lateness and how many ran
 * before their due time (must be 0: promote.lua judges the due time by Redis' TIME).
 *
 *   npx tsx bench/scheduled.ts          (N=2000 to change)
 *
 * Starts its own throw-away redis-server (test/harness/redis-server.ts).
 */
import { pino } from "pino";
import { createSystem, defineActor } from "../src/index.js";
import { startRedis } from "../test/harness/redis-server.js";

const N = Number(process.env.N ?? 2000);
const server = await startRedis();
const logger = pino({ level: "silent" });
const host = await createSystem({ appId: "bench-scheduled-host", redis: server.url, logger });
const sender = await createSystem({ appId: "bench-scheduled-sender", redis: server.url, logger });

type Due = { due: { payload: { dueMs: number } } };
const lateness: number[] = [];
let resolveAll: () => void = () => {};
const all = new Promise<void>((r) => {
  resolveAll = r;
});
// Redis runs on this machine: its TIME and Date.now() read the same clock.
const redisNow = () => Date.now();
await host.spawn(
  defineActor<Due>({
    id: "bench-scheduled",
    handlers: {
      due: (p) => {
        lateness.push(redisNow() - p.dueMs);
        if (lateness.length === N) resolveAll();
      },
    },
  }),
);
const ref = sender.ref<Due>("bench-scheduled");
const t0 = Date.now();
const sent = Promise.all(
  Array.from({ length: N }, (_, i) => {
    const at = t0 + 1000 + Math.floor((i / N) * 2000);
    return ref.tell("due", { dueMs: at }, { at });
  }),
);
await sent;
const sendMs = Date.now() - t0;
await all;
lateness.sort((a, b) => a - b);
const q = (p: number) => lateness[Math.min(lateness.length - 1, Math.floor(p * lateness.length))] as number;
console.log(
  `scheduled messages: ${N} over 2 s, delivered late by p50 ${q(0.5).toFixed(1)} ms, p99 ${q(0.99).toFixed(1)} ms, ` +
    `max ${(lateness.at(-1) as number).toFixed(1)} ms; ran before due: ${lateness.filter((l) => l < 0).length} ` +
    `(all ${N} scheduled within ${sendMs} ms)`,
);
await sender.shutdown();
await host.shutdown();
await server.stop();
