import { createSystem, defineActor } from "../src/index.ts";
import { startRedis } from "../test/harness/redis-server.ts";
const srv = await startRedis();
const A = await createSystem({ redis: srv.url, appId: "asker" });
const B = await createSystem({ redis: srv.url, appId: "server" });
await B.spawn(defineActor<any>({ id: "twice", maxAttempts: 1, handlers: { t: () => { throw new Error("boom"); }, ok: () => 5 } }));
async function tryAsk(label: string, f: () => Promise<unknown>) {
  const t0 = Date.now();
  try { const r = await f(); console.log(label, "resolved", JSON.stringify(r), Date.now() - t0, "ms"); }
  catch (e: any) { console.log(label, "rejected", e?.name, e?.reason, Date.now() - t0, "ms"); }
}
for (let i = 0; i < 3; i++) {
  await tryAsk("otherSystem fail", () => A.ref("twice").ask("t", {}, { timeoutMs: 8000 }));
  await tryAsk("sameSystem fail", () => B.ref("twice").ask("t", {}, { timeoutMs: 8000 }));
  await tryAsk("sameSystem ok", () => B.ref("twice").ask("ok", {}, { timeoutMs: 8000 }));
}
await A.shutdown(); await B.shutdown(); await srv.stop(); process.exit(0);
