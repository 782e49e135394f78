/**
 * A Python peer talking to a redactor actor: this side runs HEAR_FC (actors/hear-fc.ts) with
 * its telemetry going to the peer, then runs `peer.py` (redis-py only, written from the wire
 * protocol) and shows both sides' output. Exits with the peer's exit code.
 *
 *   npm run example:python-peer      (PYTHON=/path/to/python3 to use another interpreter)
 */
import { execFileSync, spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { pino } from "pino";
import { createSystem } from "redactor";
import { hearFc } from "../../actors/hear-fc.js";
import { findRedis } from "../support/redis.js";

const PEER_ID = "python-peer";
const FC_ID = "HEAR_FC";
// The system python, whose redis-py comes from the distribution's package.
const python = process.env.PYTHON ?? "/usr/bin/python3";
const script = fileURLToPath(new URL("./peer.py", import.meta.url));

try {
  execFileSync(python, ["-c", "import redis"], { stdio: "ignore" });
} catch {
  console.error(
    `${python} cannot import redis (redis-py). Install it: sudo apt-get install python3-redis ` +
      "(or: pip install redis), or set PYTHON to an interpreter that has it.",
  );
  process.exit(1);
}

const redis = await findRedis();
console.log(`Redis: ${redis.description}`);
const system = await createSystem({
  redis: redis.url,
  appId: "python-peer-host",
  logger: pino({ level: "error" }),
});
let code = 1;
try {
  await system.spawn(hearFc({ id: FC_ID, controllerId: PEER_ID, telemetryHz: 2 }));
  system.events.on("message.completed", (e) => {
    if (e.actor === FC_ID && e.type !== "sim_tick") console.log(`redactor │ ${FC_ID} handled ${e.type}`);
  });
  system.events.on("message.failed", (e) => {
    if (e.actor === FC_ID) console.log(`redactor │ ${FC_ID} refused ${e.type} (${e.reason}), dead-lettered`);
  });
  console.log(`redactor │ ${FC_ID} is running; starting ${python} ${script}`);
  const child = spawn(python, [script], {
    env: { ...process.env, REDIS_URL: redis.url, PEER_ID, FC_ID },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const prefix = (chunk: Buffer) => {
    for (const line of String(chunk).split("\n")) if (line) console.log(`python   │ ${line}`);
  };
  child.stdout.on("data", prefix);
  child.stderr.on("data", prefix);
  code = await new Promise<number>((resolve) => child.once("close", (c) => resolve(c ?? 1)));
  console.log(`redactor │ the peer exited with ${code}`);
} finally {
  await system.shutdown();
  await redis.stop();
}
process.exitCode = code;
