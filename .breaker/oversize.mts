import { createSystem, defineActor } from "../src/index.ts";
import { startRedis } from "../test/harness/redis-server.ts";
const srv = await startRedis();
const A = await createSystem({ redis: srv.url, appId: "asker" });                       // default maxMessageBytes (1 MiB)
const B = await createSystem({ redis: srv.url, appId: "server", maxMessageBytes: 4000 });
await B.spawn(defineActor<any>({ id: "small", handlers: { t: (p: any) => p.s.length } }));
const t0 = Date.now();
let id = "";
A.events.on("message.sent" as any, (e: any) => { id = e?.id ?? id; });
try { await A.ref("small").ask("t", { s: "x".repeat(10000) }, { timeoutMs: 5000 }); console.log("resolved"); }
catch (e: any) { console.log("rejected", e.name, e.reason, Date.now() - t0, "ms"); }
const dead = await srv.client().zrange("queue:small:dead", 0, -1);
const d = JSON.parse(dead[0]); console.log("dead reason:", d.reason, "error:", d.error);
const mid = JSON.parse(d.message).id; console.log("status:", await A.messageStatus(mid));
console.log("asker inbox:", await srv.client().zcard("queue:asker:inbox"));
await A.shutdown(); await B.shutdown(); await srv.stop(); process.exit(0);
