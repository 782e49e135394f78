import { createSystem, defineActor } from "../src/index.ts";
import { startRedis } from "../test/harness/redis-server.ts";
const srv = await startRedis();
const A = await createSystem({ redis: srv.url, appId: "asker" });
const B = await createSystem({ redis: srv.url, appId: "server", maxMessageBytes: 4000 });
await B.spawn(defineActor<any>({ id: "slow", maxAttempts: 1, handlerTimeoutMs: 200, handlers: { t: async () => { await new Promise(r => setTimeout(r, 1500)); return 1; } } }));
await B.spawn(defineActor<any>({ id: "twice", maxAttempts: 2, retryBackoff: { minMs: 100 }, handlers: { t: () => { throw new Error("boom"); } } }));
await B.spawn(defineActor<any>({ id: "small", handlers: { t: (p: any) => p.s.length } }));
await B.spawn(defineActor<any>({ id: "asker2", handlers: { t: async (_p: any, ctx: any) => { return await ctx.ref("twice").ask("t", {}, { timeoutMs: 8000 }); } }, maxAttempts: 1 }));
async function tryAsk(label: string, f: () => Promise<unknown>) {
  const t0 = Date.now();
  try { const r = await f(); console.log(label, "resolved", JSON.stringify(r), Date.now() - t0, "ms"); }
  catch (e: any) { console.log(label, "rejected", e?.name, e?.reason, String(e?.message).slice(0, 140), Date.now() - t0, "ms"); }
}
await Promise.all([
  tryAsk("handlerTimeout", () => A.ref("slow").ask("t", {}, { timeoutMs: 8000 })),
  tryAsk("maxAttempts2", () => A.ref("twice").ask("t", {}, { timeoutMs: 8000 })),
  tryAsk("oversizeAtRecipient", () => A.ref("small").ask("t", { s: "x".repeat(10000) }, { timeoutMs: 8000 })),
  tryAsk("nestedAsk", () => A.ref("asker2").ask("t", {}, { timeoutMs: 8000 })),
]);
console.log("dead:", (await srv.client().keys("queue:*:dead")));
for (const k of ["small","twice","slow","asker2"]) for (const e of await srv.client().zrange(`queue:${k}:dead`, 0, -1)) console.log(k, e.slice(0, 200));
await A.shutdown(); await B.shutdown(); await srv.stop(); process.exit(0);
