import { createSystem, defineActor } from "../src/index.ts";
import { startRedis } from "../test/harness/redis-server.ts";
import { randomUUID } from "node:crypto";
const mode = process.argv[2];
const srv = await startRedis(mode === "ks" ? { args: ["--notify-keyspace-events", "Kz"] } : {});
const raw = srv.client();
const system = await createSystem({ redis: srv.url, appId: "probe-sys" });
const app = "act";
const ref = system.ref<any>(app);
await Promise.all(Array.from({ length: 200 }, (_, i) => ref.tell("rec", { tag: `n${i}` })));
const seen: string[] = [];
await system.spawn(defineActor<any>({ id: app, claimBatch: 200, handlers: { rec: async (p: any) => { seen.push(p.tag); await new Promise(r => setTimeout(r, 10)); } } }));
while (seen.length < 3) await new Promise(r => setTimeout(r, 5));
const now = Date.now() / 1000; const id = randomUUID();
const member = JSON.stringify({ id, sender: "petal-app-manager", recipient: app, message_type: "rec", payload: { tag: "CRITICAL" }, priority: 4, timestamp: now, reply_to: null, timeout: null });
const t0 = performance.now();
if (mode === "redactorAsk") { void ref.ask("rec", { tag: "CRITICAL" }, { priority: 4, timeoutMs: 10000 }).catch(() => {}); }
else if (mode === "redactorBroadcastish") { await ref.tell("rec", { tag: "CRITICAL" }, { priority: 4, timeoutMs: 10000 }); }
else await raw.zadd(`queue:${app}:inbox`, 4000 + now, member);
const before = seen.length;
while (!seen.includes("CRITICAL") && performance.now() - t0 < 10000) await new Promise(r => setTimeout(r, 2));
console.log(JSON.stringify({ mode, ranBefore: seen.indexOf("CRITICAL") - before, waitedMs: Math.round(performance.now() - t0) }));
await system.shutdown(); await srv.stop(); process.exit(0);
