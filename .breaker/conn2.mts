import { startRedis } from "../test/harness/redis-server.ts";
import { spawn, execFileSync } from "node:child_process";
const srv = await startRedis();
const pid = execFileSync("sh", ["-c", `ss -ltnp 'sport = :${srv.port}' | grep -o 'pid=[0-9]*' | head -1 | cut -d= -f2`]).toString().trim();
console.log("redis pid", pid);
process.kill(Number(pid), "SIGSTOP");
const run = (label: string, args: string[], limitMs: number) => new Promise<void>((res) => {
  const t0 = Date.now(); let out = "";
  const c = spawn(process.execPath, ["--import", "tsx", ...args], { env: { ...process.env, REDIS_URL: srv.url, APP_ID: "cf" } });
  c.stdout.on("data", d => out += d); c.stderr.on("data", d => out += d);
  const timer = setTimeout(() => { c.kill("SIGKILL"); }, limitMs);
  c.on("exit", (code, sig) => { clearTimeout(timer); console.log(label, "| exit", code, sig ?? "", "after", Date.now() - t0, "ms |", out.trim().replace(/\s+/g, " ").slice(0, 200)); res(); });
});
await Promise.all([run("createSystem vs SIGSTOPped redis", ["test/fixtures/connect-fails.ts"], 20000), run("CLI ls vs SIGSTOPped redis", ["src/cli/main.ts", "ls", "--redis", srv.url], 20000)]);
process.kill(Number(pid), "SIGCONT");
await srv.stop(); process.exit(0);
