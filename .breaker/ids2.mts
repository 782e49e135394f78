import { createSystem, defineActor } from "../src/index.ts";
import { startRedis } from "../test/harness/redis-server.ts";
const srv = await startRedis();
const S = await createSystem({ redis: srv.url, appId: process.argv[2] ?? "x" });
try { await S.spawn(defineActor<any>({ id: process.argv[3] ?? "x", handlers: { t: () => "from-actor" } })); console.log("spawn resolved"); } catch (e: any) { console.log("spawn rejected:", e.stack.split("\n").slice(0, 8).join("\n")); }
console.log("actorIds:", S.actorIds());
console.log("status:", JSON.stringify(await S.status(process.argv[3] ?? "x")));
await S.shutdown(); await srv.stop(); process.exit(0);
