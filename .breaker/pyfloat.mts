import { createSystem, defineActor } from "../src/index.ts";
import { startRedis } from "../test/harness/redis-server.ts";
const srv = await startRedis(); const raw = srv.client();
const S = await createSystem({ redis: srv.url, appId: "sys" });
const got: any[] = [];
await S.spawn(defineActor<any>({ id: "act", handlers: { telemetry: (p: any) => { got.push(p); } } }));
const ts = Date.now() / 1000;
// Exactly what Python's json.dumps writes for these floats (the seed's RedisProxy uses json.dumps)
const payloadText = process.argv[2] ?? '{"drift": 1e-07}';
const member = `{"id": "py-1", "sender": "HEAR_FC", "recipient": "act", "message_type": "telemetry", "payload": ${payloadText}, "priority": 2, "timestamp": ${ts}, "reply_to": null, "timeout": null}`;
console.log("JSON.parse accepts it:", (() => { try { JSON.parse(member); return true; } catch { return false; } })());
await raw.zadd("queue:act:inbox", 2000 + ts, member); await raw.publish("channel:act", "new_message:py-1");
await new Promise(r => setTimeout(r, 1500));
console.log("handled:", JSON.stringify(got), "| status:", await raw.hget("message:py-1", "status"), "| dead:", (await raw.zrange("queue:act:dead", 0, -1)).map(e => { const d = JSON.parse(e); return d.reason + ": " + d.error; }));
await S.shutdown(); await srv.stop(); process.exit(0);
