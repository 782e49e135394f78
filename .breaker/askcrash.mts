import { createSystem, defineActor } from "../src/index.ts";
import { startRedis } from "../test/harness/redis-server.ts";
const which = process.argv[2];
const srv = await startRedis();
const raw = srv.client();
const A = await createSystem({ redis: srv.url, appId: "asker" });
await A.spawn(defineActor<any>({ id: "svc", handlers: { t: async () => { await new Promise(r => setTimeout(r, 200)); return 1; } } }));
const ref = A.ref<any>("svc");
const t0 = Date.now();
async function attempt(f: () => Promise<unknown>) {
  try { const r = await f(); console.log(which, "resolved", JSON.stringify(r), Date.now() - t0); }
  catch (e: any) { console.log(which, "caught", e?.name, String(e?.message).slice(0, 100), Date.now() - t0); }
}
if (which === "matchThrows") await attempt(() => ref.ask("t", {}, { timeoutMs: 2000, match: () => { throw new Error("match boom"); } }));
if (which === "debugSleep") { void raw.call("DEBUG", "SLEEP", "2").catch(() => {}); await new Promise(r => setTimeout(r, 50)); await attempt(() => ref.ask("t", {}, { timeoutMs: 300 })); }
if (which === "scriptBusy") { const r2 = srv.client(); void r2.eval("local t=redis.call('TIME'); while true do local n=redis.call('TIME'); if (n[1]-t[1])*1000000+(n[2]-t[2]) > 2500000 then break end end return 1", 0).catch(()=>{}); await new Promise(r => setTimeout(r, 50)); await attempt(() => ref.ask("t", {}, { timeoutMs: 300 })); }
if (which === "killRedis") { await srv.kill(); await attempt(() => ref.ask("t", {}, { timeoutMs: 300 })); await srv.restart(0); }
if (which === "shutdownDuringAsk") { const p = attempt(() => ref.ask("t", {}, { timeoutMs: 5 })); await A.shutdown(); await p; }
if (which === "pauseTwoAsks") { await raw.call("CLIENT", "PAUSE", "1500", "WRITE"); await Promise.all([attempt(() => ref.ask("t", {}, { timeoutMs: 200 })), attempt(() => ref.ask("t", {x:1}, { timeoutMs: 400 })), attempt(() => A.ref<any>("other").ask("t", {}, { timeoutMs: 100 }))]); }
if (which === "askFromHandler") { await A.spawn(defineActor<any>({ id: "h", handlers: { go: async (_p: any, ctx: any) => { try { await ctx.ref("nobody").ask("t", {}, { timeoutMs: 1 }); } catch (e: any) { console.log("inner caught", e.name); } } } })); await raw.call("CLIENT", "PAUSE", "800", "WRITE"); await A.ref<any>("h").tell("go", {}); }
await new Promise(r => setTimeout(r, 3000));
console.log(which, "alive at end");
try { await A.shutdown(); } catch {}
await srv.stop(); process.exit(0);
