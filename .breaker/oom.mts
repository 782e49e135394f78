import { createSystem, defineActor } from "../src/index.ts";
import { startRedis } from "../test/harness/redis-server.ts";
const srv = await startRedis(); const admin = srv.client();
const N = Number(process.argv[2] ?? 300), oomMs = Number(process.argv[3] ?? 5000), hMs = Number(process.argv[4] ?? 20);
const sender = await createSystem({ redis: srv.url, appId: "sender" });
const ref = sender.ref<any>("act");
const ids: string[] = [];
for (let i = 0; i < N; i++) ids.push(await ref.tell("t", { i }));
const runs = new Map<number, number>();
const B = await createSystem({ redis: srv.url, appId: "server", leaseMs: Number(process.env.LEASE ?? 30000) });
const events: Record<string, number> = {};
for (const ev of ["lease.lost", "heartbeat.failed", "message.dead"]) (B.events as any).on(ev, () => { events[ev] = (events[ev] ?? 0) + 1; });
await B.spawn(defineActor<any>({ id: "act", handlers: { t: async (p: any) => { runs.set(p.i, (runs.get(p.i) ?? 0) + 1); await new Promise(r => setTimeout(r, hMs)); } } }));
await new Promise(r => setTimeout(r, 300));
await admin.config("SET", "maxmemory", "1");
const t1 = Date.now();
let online = Infinity;
while (Date.now() - t1 < oomMs) { online = Math.min(online, (await B.listOnline()).length); await new Promise(r => setTimeout(r, 250)); }
await admin.config("SET", "maxmemory", "0");
const t0 = Date.now();
while (Date.now() - t0 < 40000) { if (runs.size === N && (await admin.zcard("queue:act:processing")) === 0 && (await admin.zcard("queue:act:inbox")) === 0) break; await new Promise(r => setTimeout(r, 200)); }
const twice = [...runs.values()].filter(v => v > 1).length;
const sts: Record<string, number> = {};
for (const id of ids) { const s = String(await sender.messageStatus(id)); sts[s] = (sts[s] ?? 0) + 1; }
console.log(JSON.stringify({ N, oomMs, hMs, ran: runs.size, ranTwiceOrMore: twice, maxRuns: Math.max(...runs.values()), dead: await admin.zcard("queue:act:dead"), statuses: sts, events, minOnlineDuringOom: online, settleSecs: (Date.now() - t0) / 1000 }));
await B.shutdown(); await sender.shutdown(); await srv.stop(); process.exit(0);
