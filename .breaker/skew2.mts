import { createSystem, defineActor } from "../src/index.ts";
import { startRedis } from "../test/harness/redis-server.ts";
import { execFile } from "node:child_process";
const srv = await startRedis();
const B = await createSystem({ redis: srv.url, appId: "server" });
const ran: string[] = [];
await B.spawn(defineActor<any>({ id: "act", handlers: { t: (p: any) => { ran.push(p.k); return { ok: true }; } } }));
const cli = (skew: string, ...args: string[]) => new Promise<{ code: number | null; out: string; err: string }>((res) => {
  execFile(process.execPath, ["--import", "tsx", "--import", "./test/fixtures/skew-clock.mjs", "src/cli/main.ts", ...args, "--redis", srv.url], { env: { ...process.env, CLOCK_SKEW_MS: skew }, timeout: 20000 }, (e, out, err) => res({ code: e ? (e as any).code : 0, out, err }));
});
for (const skew of ["0", "-10000", "60000"]) {
  const r = await cli(skew, "send", "act", "t", `{"k":"send${skew}"}`, "--timeout", "5s");
  const id = r.out.trim().split("\n").pop()!;
  await new Promise(r => setTimeout(r, 800));
  const h = await srv.client().hgetall("message:" + id);
  const [s, us] = await srv.client().time();
  console.log("send skew", skew, "exit", r.code, "status", h.status, "stamp-minus-redis(s)", (Number(h.timestamp) - (Number(s) + Number(us) / 1e6)).toFixed(1), "ran", ran.includes(`send${skew}`));
}
for (const skew of ["0", "-10000"]) {
  const r = await cli(skew, "ask", "act", "t", `{"k":"ask${skew}"}`, "--timeout", "5s");
  console.log("ask skew", skew, "exit", r.code, r.out.replace(/\s+/g, " ").slice(0, 60), "ran", ran.includes(`ask${skew}`));
}
await B.shutdown(); await srv.stop(); process.exit(0);
