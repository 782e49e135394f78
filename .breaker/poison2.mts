import { createSystem } from "../src/index.ts";
import { startRedis } from "../test/harness/redis-server.ts";
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, existsSync } from "node:fs";
import { join } from "node:path"; import { tmpdir } from "node:os";
const srv = await startRedis(); const admin = srv.client();
const log = join(mkdtempSync(join(tmpdir(), "brk-")), "runs.log");
const actor = "act";
const sender = await createSystem({ redis: srv.url, appId: "sender" });
const ref = sender.ref<any>(actor);
const plan = (process.argv[2] ?? "o1,pk,o2,o3,pe,o4").split(",");
const ids: Record<string, string> = {};
for (const k of plan) ids[k] = await ref.tell("job", { key: k, ...(k.startsWith("pk") ? { die: "kill" } : k.startsWith("pe") ? { die: "exit" } : { waitMs: 20 }) }, k.endsWith("c") ? { priority: 4 } : {});
let n = 0, supervising = true, child: any;
const start = () => { if (!supervising) return; n++; child = spawn(process.execPath, ["--import", "tsx", "test/fixtures/delivery-worker.ts"], { env: { ...process.env, REDIS_URL: srv.url, APP_ID: `w${n}`, ACTOR_ID: actor, RUN_LOG: log, HEARTBEAT_MS: "200", MAX_ATTEMPTS: "3" }, stdio: "ignore" }); child.once("exit", () => setTimeout(start, 50)); };
start();
const poisons = plan.filter(k => k.startsWith("p")).length;
const t0 = Date.now();
while (Date.now() - t0 < 45000) {
  const dead = await admin.zcard(`queue:${actor}:dead`);
  const sts = await Promise.all(plan.filter(k => k.startsWith("o")).map(k => sender.messageStatus(ids[k])));
  if (dead >= poisons && sts.every(s => s === "completed")) break;
  await new Promise(r => setTimeout(r, 200));
}
supervising = false; child?.kill("SIGKILL");
const lines = existsSync(log) ? readFileSync(log, "utf8").trim().split("\n").map(l => JSON.parse(l)) : [];
const starts: Record<string, number> = {};
for (const l of lines) if (l.phase === "start") starts[l.key] = (starts[l.key] ?? 0) + 1;
console.log("plan", plan.join(","), "| processes started", n, "| starts", JSON.stringify(starts), "| secs", ((Date.now() - t0) / 1000).toFixed(1));
for (const e of await admin.zrange(`queue:${actor}:dead`, 0, -1)) { const d = JSON.parse(e); console.log("  dead", d.reason, "attempts", d.attempts, JSON.parse(d.message).payload.key); }
for (const k of plan) console.log("  ", k, await sender.messageStatus(ids[k]), await admin.hget("message:" + ids[k], "attempts"));
await sender.shutdown(); await srv.stop(); process.exit(0);
