/**
 * idle cost: what a process with 1, 1,000 and 10,000 idle actors costs Redis (commands/s and
 * server CPU µs/s, from INFO commandstats deltas over fixed windows) and itself (RSS and heap
 * per actor). Each size runs in a child process of its own, so its memory is measurable.
 */
import { type ChildProcess, fork } from "node:child_process";
import { fileURLToPath } from "node:url";
import { Collector } from "../collect.js";
import type { BenchEnv, Scenario } from "../model.js";
import { commandStats, statsDelta } from "../redis-info.js";
import { sleep } from "../util.js";
import type { IdleReady } from "./idle-child.js";

/** Sizes of the idle-cost scenario. */
export interface IdleParams {
  actors: number[];
  /** Length of one counting window; a multiple of the 2 s heartbeat keeps heartbeats per window fixed. */
  windowMs: number;
  /** Wait after the actors are up before counting (their start-up claims are not idle cost). */
  settleMs: number;
}

const CHILD = fileURLToPath(new URL("./idle-child.ts", import.meta.url));
const ROOT = fileURLToPath(new URL("../..", import.meta.url));

function label(actors: number): string {
  return `${actors.toLocaleString("en-US")} idle actor${actors === 1 ? "" : "s"}`;
}

/** Forks the child and resolves with it once its actors are up. */
function startChild(url: string, actors: number): Promise<{ child: ChildProcess; ready: IdleReady }> {
  // tsx runs the TypeScript child; --expose-gc lets it collect before each memory reading.
  const child = fork(CHILD, [url, String(actors)], {
    cwd: ROOT,
    execArgv: ["--import", "tsx", "--expose-gc"],
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
  return new Promise((resolve, reject) => {
    const onExit = (code: number | null) => reject(new Error(`idle child exited early (${code})`));
    child.once("exit", onExit);
    child.once("error", reject);
    child.on("message", (message: IdleReady | string) => {
      if (typeof message === "object" && message.type === "ready") {
        child.off("exit", onExit);
        resolve({ child, ready: message });
      }
    });
  });
}

function stopChild(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill("SIGKILL"), 15_000);
    child.once("exit", () => {
      clearTimeout(timer);
      resolve();
    });
    child.send("stop");
  });
}

/** Counts the Redis commands of one child with `actors` idle actors, window by window. */
async function measure(env: BenchEnv, p: IdleParams, actors: number, c: Collector): Promise<void> {
  await env.admin.flushall("SYNC");
  env.progress(`idle: ${label(actors)}`);
  const { child, ready } = await startChild(env.redisUrl, actors);
  const name = label(actors);
  try {
    await sleep(p.settleMs);
    const byCommand: Record<string, number> = {};
    for (let rep = 0; rep < env.reps; rep++) {
      const before = await commandStats(env.admin);
      await sleep(p.windowMs);
      const delta = statsDelta(before, await commandStats(env.admin));
      c.add(name, "Redis commands/s", "cmd/s", delta.calls / (p.windowMs / 1000));
      c.add(name, "Redis CPU", "µs/s", delta.usec / (p.windowMs / 1000));
      for (const [cmd, n] of Object.entries(delta.byCommand)) byCommand[cmd] = (byCommand[cmd] ?? 0) + n;
    }
    const mix = Object.entries(byCommand)
      .map(([cmd, n]) => `${cmd} ${n}`)
      .join(", ");
    c.note(`idle ${name}: commands in ${env.reps} × ${p.windowMs / 1000} s: ${mix || "none"}`);
    if (actors >= 1000) {
      const target = { op: "<=" as const, value: 4 };
      c.add(name, "RSS per actor", "KB", (ready.rssAfter - ready.rssBefore) / actors / 1024, target);
      c.add(name, "JS heap per actor", "KB", (ready.heapAfter - ready.heapBefore) / actors / 1024);
      c.add(name, "spawn time per actor", "ms", ready.spawnMs / actors);
    }
  } finally {
    await stopChild(child);
  }
}

/** The idle-cost scenario. */
export const idle: Scenario<IdleParams> = {
  name: "idle",
  title: "an idle process with 1, 1,000, 10,000 actors: Redis commands/s, RSS per actor",
  full: { actors: [1, 1_000, 10_000], windowMs: 2_000, settleMs: 1_500 },
  smoke: { actors: [1, 1_000], windowMs: 300, settleMs: 200 },
  async run(env, p) {
    const c = new Collector();
    for (const actors of p.actors) await measure(env, p, actors, c);
    await env.admin.flushall("SYNC");
    const [first, ...rest] = p.actors;
    if (first !== undefined) {
      for (const actors of rest) {
        // "Flat within heartbeat noise": a 2 s window holds 1 heartbeat and 2 sweeps, ± one each.
        c.ratio("Redis commands/s", label(actors), label(first), { op: "<=", value: 1.5 });
      }
    }
    c.note("idle: RSS is read after GC in a child process per size; one sample per size");
    return c.result("idle", `${p.actors.map((n) => n.toLocaleString("en-US")).join(" / ")} actors`);
  },
};
