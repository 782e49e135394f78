import { createSystem, defineActor } from "../src/index.ts";
import { startRedis } from "../test/harness/redis-server.ts";
import { spawnSync } from "node:child_process";
const srv = await startRedis();
const B = await createSystem({ redis: srv.url, appId: "server" });
await B.spawn(defineActor<any>({ id: "act", handlers: { t: (p: any) => ({ ok: true }) } }));
const r = spawnSync(process.execPath, ["--import", "tsx", "src/cli/main.ts", "ask", "act", "t", `{"k":1}`, "--timeout", "5s", "--redis", srv.url], { encoding: "utf8", timeout: 20000 });
console.log("exit", r.status, "STDOUT", r.stdout, "STDERR", r.stderr.slice(0, 1500));
await B.shutdown(); await srv.stop(); process.exit(0);
