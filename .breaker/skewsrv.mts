import { createSystem, defineActor } from "../src/index.ts";
import { startRedis } from "../test/harness/redis-server.ts";
import { execFileSync, spawnSync } from "node:child_process";
const srv = await startRedis();
const B = await createSystem({ redis: srv.url, appId: "server" });
const ran: string[] = [];
await B.spawn(defineActor<any>({ id: "act", handlers: { t: (p: any) => { ran.push(p.k); return { ok: true }; } } }));
for (const skew of ["-10000", "60000"]) {
  const r = spawnSync(process.execPath, ["--import", "tsx", "--import", "./test/fixtures/skew-clock.mjs", "src/cli/main.ts", "send", "act", "t", `{"k":"skew${skew}"}`, "--timeout", "5s", "--redis", srv.url], { encoding: "utf8", env: { ...process.env, CLOCK_SKEW_MS: skew }, timeout: 20000 });
  const id = r.stdout.trim().split("\n").pop()!;
  await new Promise(r => setTimeout(r, 800));
  const h = await srv.client().hgetall("message:" + id);
  const [s, us] = await srv.client().time();
  console.log("send skew", skew, "exit", r.status, "status", h.status, "stamped-minus-redis", (Number(h.timestamp) - (Number(s) + Number(us) / 1e6)).toFixed(1), "ran", ran.includes(`skew${skew}`));
}
const r = spawnSync(process.execPath, ["--import", "tsx", "--import", "./test/fixtures/skew-clock.mjs", "src/cli/main.ts", "ask", "act", "t", `{"k":"askskew"}`, "--timeout", "5s", "--redis", srv.url], { encoding: "utf8", env: { ...process.env, CLOCK_SKEW_MS: "-10000" }, timeout: 20000 });
console.log("ask skew -10000 exit", r.status, r.stdout.trim().slice(0, 200), r.stderr.split("\n").filter(l => !l.startsWith("{")).join(" ").slice(0, 300), "ran", ran.includes("askskew"));
await B.shutdown(); await srv.stop(); process.exit(0);
