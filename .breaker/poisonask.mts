import { createSystem } from "../src/index.ts";
import { startRedis } from "../test/harness/redis-server.ts";
import { spawn } from "node:child_process";
import { mkdtempSync } from "node:fs"; import { join } from "node:path"; import { tmpdir } from "node:os";
const srv = await startRedis();
const log = join(mkdtempSync(join(tmpdir(), "brk-")), "runs.log");
const asker = await createSystem({ redis: srv.url, appId: "asker" });
let n = 0, supervising = true, child: any;
const start = () => { if (!supervising) return; n++; child = spawn(process.execPath, ["--import", "tsx", "test/fixtures/delivery-worker.ts"], { env: { ...process.env, REDIS_URL: srv.url, APP_ID: `w${n}`, ACTOR_ID: "act", RUN_LOG: log, HEARTBEAT_MS: "200", MAX_ATTEMPTS: "2" }, stdio: "ignore" }); child.once("exit", () => setTimeout(start, 50)); };
start();
const t0 = Date.now();
try { const r = await asker.ref<any>("act").ask("job", { key: "p", die: process.argv[2] ?? "exit" }, { timeoutMs: 20000 }); console.log("resolved", r); }
catch (e: any) { console.log("rejected", e.name, e.reason, String(e.message).slice(0, 160), Date.now() - t0, "ms"); }
const dead = await srv.client().zrange("queue:act:dead", 0, -1); console.log("dead", dead.map(d => JSON.parse(d).reason), "processes started", n, "dead-letter after", dead.length ? JSON.parse(dead[0]).failed_at ?? "" : "");
supervising = false; child?.kill("SIGKILL");
await asker.shutdown(); await srv.stop(); process.exit(0);
