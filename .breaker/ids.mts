import { createSystem, defineActor } from "../src/index.ts";
import { startRedis } from "../test/harness/redis-server.ts";
const srv = await startRedis();
const S = await createSystem({ redis: srv.url, appId: "x" });
const T = await createSystem({ redis: srv.url, appId: "other" });
async function t(label: string, f: () => Promise<unknown>) { const t0 = Date.now(); try { console.log(label, "OK", JSON.stringify(await f()), Date.now() - t0, "ms"); } catch (e: any) { console.log(label, "ERR", e?.name, String(e?.message).slice(0, 150), Date.now() - t0, "ms"); } }
await t("spawn actor id == own appId", () => S.spawn(defineActor<any>({ id: "x", handlers: { t: () => "from-actor-x" } })));
await t("ask x from other system", () => T.ref<any>("x").ask("t", {}, { timeoutMs: 2000 }));
await t("ask x from S itself", () => S.ref<any>("x").ask("t", {}, { timeoutMs: 2000 }));
await t("spawn actor id == other system's appId (same process)", () => S.spawn(defineActor<any>({ id: "other", handlers: { t: () => "from-actor-other" } })));
await t("ask 'other' from S", () => S.ref<any>("other").ask("t", {}, { timeoutMs: 2000 }));
await t("ask 'x' from T after", () => T.ref<any>("x").ask("t", {}, { timeoutMs: 2000 }));
await t("dup spawn", () => S.spawn(defineActor<any>({ id: "x2", handlers: {} })).then(() => S.spawn(defineActor<any>({ id: "x2", handlers: {} }))));
console.log("dead x:", await srv.client().zrange("queue:x:dead", 0, -1));
console.log("dead other:", await srv.client().zrange("queue:other:dead", 0, -1));
await S.shutdown(); await T.shutdown(); await srv.stop(); process.exit(0);
