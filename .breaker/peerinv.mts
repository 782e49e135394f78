import { createSystem, defineActor } from "../src/index.ts";
import { startRedis } from "../test/harness/redis-server.ts";
const srv = await startRedis();
const raw = srv.client();
const B = await createSystem({ redis: srv.url, appId: "server" });
await B.spawn(defineActor<any>({ id: "svc", handlers: { t: () => 1 } }));
const ts = Date.now() / 1000;
const cases: Record<string, any> = {
  prio9: { id: "r-prio9", sender: "py", recipient: "svc", message_type: "t", payload: {}, priority: 9, timestamp: ts, reply_to: null, timeout: 5 },
  prioStr: { id: "r-priostr", sender: "py", recipient: "svc", message_type: "t", payload: {}, priority: "4", timestamp: ts, reply_to: null, timeout: 5 },
  noPayload: { id: "r-nopayload", sender: "py", recipient: "svc", message_type: "t", priority: 2, timestamp: ts, reply_to: null, timeout: 5 },
  badMeta: { id: "r-badmeta", sender: "py", recipient: "svc", message_type: "t", payload: {}, priority: 2, timestamp: ts, reply_to: null, timeout: 5, payload_meta: { values: { x: ["nope"] } } },
};
for (const [k, m] of Object.entries(cases)) { await raw.zadd("queue:svc:inbox", 2000 + ts, JSON.stringify(m)); await raw.publish("channel:svc", "new_message:" + m.id); }
await new Promise(r => setTimeout(r, 1500));
for (const e of await raw.zrange("queue:svc:dead", 0, -1)) { const d = JSON.parse(e); console.log("dead", d.reason, JSON.parse(d.message).id, String(d.error).slice(0, 80)); }
console.log("py inbox:", (await raw.zrange("queue:py:inbox", 0, -1)).map(s => s.slice(0, 160)));
for (const k of Object.values(cases)) console.log(k.id, await raw.hget("message:" + k.id, "status"));
await B.shutdown(); await srv.stop(); process.exit(0);
