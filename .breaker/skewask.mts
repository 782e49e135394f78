import { createSystem, defineActor } from "../src/index.ts";
import { startRedis } from "../test/harness/redis-server.ts";
import { spawnSync } from "node:child_process";
const srv = await startRedis();
const B = await createSystem({ redis: srv.url, appId: "server" });
const ran: string[] = [];
await B.spawn(defineActor<any>({ id: "act", handlers: { t: (p: any) => { ran.push(p.k); return { ok: true }; } } }));
for (const skew of (process.argv[2] ?? "0,-10000,-3000,-1500").split(",")) {
  const t0 = Date.now();
  const r = spawnSync(process.execPath, ["--import", "tsx", "--import", "./test/fixtures/skew-clock.mjs", "src/cli/main.ts", "ask", "act", "t", `{"k":"ask${skew}"}`, "--timeout", "5s", "--redis", srv.url], { encoding: "utf8", env: { ...process.env, CLOCK_SKEW_MS: skew }, timeout: 20000 });
  console.log("ask skew", skew, "exit", r.status, Date.now() - t0, "ms", r.stdout.trim().slice(0, 80), "| ran", ran.includes(`ask${skew}`), "| inbox", await srv.client().zcard("queue:act:inbox"));
}
const inbox = await srv.client().zrange("queue:act:inbox", 0, -1, "WITHSCORES"); console.log(inbox.map(s => s.slice(0, 200)));
await B.shutdown(); await srv.stop(); process.exit(0);
