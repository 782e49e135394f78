import { createSystem, defineActor } from "../src/index.ts";
import { startRedis } from "../test/harness/redis-server.ts";
import { randomUUID } from "node:crypto";
const srv = await startRedis(); const raw = srv.client();
const S = await createSystem({ redis: srv.url, appId: "x" });
const T = await createSystem({ redis: srv.url, appId: "other" });
let handled = 0;
await S.spawn(defineActor<any>({ id: "x", handlers: { t: () => { handled++; } } }));
const ids: string[] = [];
for (let i = 0; i < 20; i++) ids.push(await T.ref<any>("x").tell("t", { i }));
await new Promise(r => setTimeout(r, 1500));
const sts: Record<string, number> = {};
for (const id of ids) { const s = String(await T.messageStatus(id)); sts[s] = (sts[s] ?? 0) + 1; }
console.log("tells to actor x (in system x): handled", handled, "of 20; statuses", JSON.stringify(sts), "dead", await raw.zcard("queue:x:dead"));
// A peer-style reply (no reply_to) to an ask from system x, matched with match()
const p = S.ref<any>("py-peer").ask("cmd", { cid: "c1" }, { timeoutMs: 3000, match: (m: any) => m.message_type === "cmd_response" && m.payload?.cid === "c1" });
await new Promise(r => setTimeout(r, 200));
const rid = randomUUID(); const ts = Date.now() / 1000;
await raw.zadd("queue:x:inbox", 2000 + ts, JSON.stringify({ id: rid, sender: "py-peer", recipient: "x", message_type: "cmd_response", payload: { cid: "c1" }, priority: 2, timestamp: ts, reply_to: null, timeout: null }));
await raw.publish("channel:x", "new_message:" + rid);
const t0 = Date.now();
try { console.log("peer-style ask:", JSON.stringify(await p), Date.now() - t0, "ms"); } catch (e: any) { console.log("peer-style ask ERR", e.name, Date.now() - t0, "ms"); }
for (const e of await raw.zrange("queue:x:dead", 0, -1)) { const d = JSON.parse(e); console.log(" dead", d.reason, String(d.error).slice(0, 100)); }
await S.shutdown(); await T.shutdown(); await srv.stop(); process.exit(0);
