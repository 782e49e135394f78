import { createSystem, defineActor } from "../src/index.ts";
import { startRedis } from "../test/harness/redis-server.ts";
const forgedId = process.argv[2] ?? "0x10";   // how the forged member spells the id
const genuineId = process.argv[3] ?? "16";
const srv = await startRedis(); const raw = srv.client();
const A = await createSystem({ redis: srv.url, appId: "sender" });
const ran: string[] = [];
// Genuine message, sent by redactor, before the actor exists.
await A.ref<any>("act").tell("t", { k: "genuine" }, { id: genuineId });
const ts = Date.now() / 1000;
const forged = `{"id":${forgedId},"sender":"x","recipient":"act","message_type":"t","payload":{"k":"forged"},"priority":4,"timestamp":${ts},"reply_to":null,"timeout":null}`;
await raw.zadd("queue:act:inbox", 4000 + ts, forged);
await A.spawn(defineActor<any>({ id: "act", handlers: { t: (p: any) => { ran.push(p.k); } } }));
await new Promise(r => setTimeout(r, 2500));
console.log("forged id spelled", forgedId, "| ran:", ran, "| status of", genuineId, "=", await A.messageStatus(genuineId));
for (const e of await raw.zrange("queue:act:dead", 0, -1)) { const d = JSON.parse(e); console.log("dead:", d.reason, "id", d.id ?? "", String(d.error).slice(0, 90)); }
console.log("inbox", await raw.zcard("queue:act:inbox"), "processing", await raw.zcard("queue:act:processing"));
await A.shutdown(); await srv.stop(); process.exit(0);
