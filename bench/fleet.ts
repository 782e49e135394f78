/**
 * fleet: an actor family (`drone`, one instance per drone id) served by a pool of worker
 * processes, next to BullMQ with one queue (and one Worker) per drone.
 *
 * `npx tsx bench/fleet.ts [--smoke] [--reps N] [--ids N] [--processes N]` starts its own
 * throw-away redis-server and prints one table; `npm run bench -- fleet` runs the same scenario
 * inside the bench runner (bench/run.ts).
 *
 * redactor, each repetition (test/fixtures/family-worker.ts in each process, heartbeat 2 s):
 * 1. one message to each of `ids` never-activated ids, all at once: activations/s;
 * 2. process memory after a GC, per active instance (heap and RSS over the baseline taken before
 *    any activation), and Redis bytes per instance;
 * 3. `messages` messages to random ids while every instance is active: messages/s;
 * 4. after `idleMs` without mail every instance is passivated: memory per passivated instance;
 * 5. first message to a passivated id, `latencySamples` distinct ids, `lanes` in flight: from
 *    just before `tell` to the handler's start (process.hrtime of both processes: one clock),
 *    p50/p99; then one more message to each of them while active: the warm p50/p99.
 *
 * BullMQ, at each size of `bullQueues` (the largest that works is the one to read; a size that
 * fails to start is reported as a note): `processes` child processes each run a Worker
 * (concurrency 1) for its share of the queues, one shared connection per process plus the
 * blocking connection BullMQ opens per Worker. The same messages/s with jobs to random queues,
 * memory per Worker, and first job to a queue idle for 3 s (its Worker blocked in BZPOPMIN): p50/p99.
 */
import { type ChildProcess, fork } from "node:child_process";
import { closeSync, mkdtempSync, openSync, readSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import { Queue, Worker } from "bullmq";
import { Redis } from "ioredis";
import { pino } from "pino";
import { createSystem } from "../src/index.js";
import { Keyspace } from "../src/keyspace.js";
import type { FamilyJob, FamilyLogLine } from "../test/fixtures/family-worker.js";
import { startRedis } from "../test/harness/redis-server.js";
import { runScenarios } from "./bench.js";
import { Collector } from "./collect.js";
import type { BenchEnv, Scenario } from "./model.js";
import { usedMemory } from "./redis-info.js";
import { percentile } from "./stats.js";
import { renderTable } from "./table.js";
import { pump, sleep, uid, waitUntil } from "./util.js";

/** Sizes of the fleet scenario. */
export interface FleetParams {
  /** Family ids (drones). */
  ids: number;
  /** Worker processes of the pool (and of BullMQ). */
  processes: number;
  /** Messages to random ids in the throughput run. */
  messages: number;
  /** Sends in flight in the activation burst and the throughput run. */
  window: number;
  /** Distinct passivated ids measured for the activation latency. */
  latencySamples: number;
  /** Sends in flight while measuring latency. */
  lanes: number;
  /** The family's idleMs, ms. */
  idleMs: number;
  /** Queue counts of the BullMQ runs, ascending; a size that fails ends the sweep. */
  bullQueues: number[];
}

const FIXTURE = fileURLToPath(new URL("../test/fixtures/family-worker.ts", import.meta.url));
const SELF = fileURLToPath(import.meta.url);
const ROOT = fileURLToPath(new URL("..", import.meta.url));

/** The issue's size, for the size line. */
const ISSUE_IDS = 10_000;

/** What a worker process reports of its memory, after a GC. */
interface MemoryReport {
  type: "memory";
  rss: number;
  heap: number;
  /** Active family instances (redactor) or Workers (BullMQ). */
  active: number;
}

/** µs of the machine's monotonic clock (process.hrtime, shared by every process). */
function nowUs(): number {
  return Number(process.hrtime.bigint() / 1000n);
}

/** A child process of the bench, spoken to over IPC. */
class Child {
  private out = "";

  constructor(readonly process: ChildProcess) {
    process.stdout?.on("data", (d) => {
      this.out += d;
    });
    process.stderr?.on("data", (d) => {
      this.out += d;
    });
  }

  /** Resolves once the child printed "ready"; rejects if it exits first or after `timeoutMs`. */
  async ready(timeoutMs: number): Promise<void> {
    await waitUntil(
      () => {
        if (this.process.exitCode !== null) throw new Error(`child exited early: ${this.out.slice(-2000)}`);
        return this.out.includes("ready");
      },
      "a worker process to start",
      timeoutMs,
      20,
    );
  }

  /** Sends `message` and resolves with the first reply of type `type`. */
  ask<T extends { type: string }>(message: unknown, type: T["type"], timeoutMs = 60_000): Promise<T> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no ${type} reply in ${timeoutMs} ms`)), timeoutMs);
      const onMessage = (reply: T) => {
        if (typeof reply !== "object" || reply === null || reply.type !== type) return;
        clearTimeout(timer);
        this.process.off("message", onMessage);
        resolve(reply);
      };
      this.process.on("message", onMessage);
      this.process.send(message as never);
    });
  }

  /** SIGTERM, then SIGKILL after `graceMs`; resolves once it exited. */
  async stop(graceMs = 15_000): Promise<void> {
    if (this.process.exitCode !== null || this.process.signalCode !== null) return;
    const exited = new Promise((r) => this.process.once("exit", r));
    this.process.kill("SIGTERM");
    const timer = setTimeout(() => this.process.kill("SIGKILL"), graceMs);
    await exited;
    clearTimeout(timer);
  }
}

/** Reads the lines appended to the workers' run logs since the last call. */
class LogTail {
  private readonly offsets = new Map<string, number>();
  private readonly partial = new Map<string, string>();
  private readonly buffer = Buffer.alloc(1 << 20);

  constructor(private readonly files: readonly string[]) {}

  /** Calls `each` for every complete new line. */
  poll(each: (line: FamilyLogLine) => void): void {
    for (const file of this.files) {
      let fd: number;
      try {
        fd = openSync(file, "r");
      } catch {
        continue; // not written yet
      }
      try {
        let offset = this.offsets.get(file) ?? 0;
        let text = this.partial.get(file) ?? "";
        for (;;) {
          const n = readSync(fd, this.buffer, 0, this.buffer.length, offset);
          if (n === 0) break;
          offset += n;
          text += this.buffer.toString("utf8", 0, n);
        }
        this.offsets.set(file, offset);
        const lines = text.split("\n");
        this.partial.set(file, lines.pop() ?? "");
        for (const line of lines) if (line) each(JSON.parse(line) as FamilyLogLine);
      } finally {
        closeSync(fd);
      }
    }
  }
}

/** Sums the memory reports of the children. */
async function memoryOf(children: readonly Child[]): Promise<MemoryReport> {
  const reports = await Promise.all(children.map((c) => c.ask<MemoryReport>("memory", "memory")));
  return reports.reduce((a, b) => ({
    type: "memory",
    rss: a.rss + b.rss,
    heap: a.heap + b.heap,
    active: a.active + b.active,
  }));
}

/** A uniformly random id in [0, n). */
function randomId(n: number): number {
  return Math.floor(Math.random() * n);
}

// ---------------------------------------------------------------------------------------------
// redactor

/** Starts `n` family worker processes on the bench server. */
async function startPool(env: BenchEnv, family: string, n: number, idleMs: number, dir: string) {
  const logs = Array.from({ length: n }, (_, i) => join(dir, `${family}-${i}.log`));
  const children = logs.map(
    (log) =>
      new Child(
        fork(FIXTURE, [], {
          cwd: ROOT,
          execArgv: ["--import", "tsx", "--expose-gc"],
          stdio: ["ignore", "pipe", "pipe", "ipc"],
          env: {
            ...process.env,
            REDIS_URL: env.redisUrl,
            REDIS_CLUSTER: "",
            APP_ID: uid("fleet-worker"),
            FAMILY: family,
            RUN_LOG: log,
            IDLE_MS: String(idleMs),
            MEMORY_PROBE: "1",
          },
        }),
      ),
  );
  await Promise.all(children.map((c) => c.ready(60_000)));
  return { children, tail: new LogTail(logs) };
}

/** Redis bytes of every key of instance `app` (status hash, queues, activation key). */
async function instanceBytes(env: BenchEnv, keys: Keyspace, app: string): Promise<number> {
  let bytes = 0;
  for (const key of [
    keys.status(app),
    keys.inbox(app),
    keys.processing(app),
    keys.dead(app),
    keys.activation(app),
  ]) {
    bytes += Number((await env.admin.memory("USAGE", key, "SAMPLES", 0)) ?? 0);
  }
  return bytes;
}

/** One repetition of the redactor side. */
async function redactorRun(env: BenchEnv, p: FleetParams, c: Collector, dir: string): Promise<void> {
  const name = `redactor, ${p.processes} processes`;
  const family = uid("drone").replace(/[^a-z0-9-]/gi, "");
  await env.admin.flushall("SYNC");
  const { children, tail } = await startPool(env, family, p.processes, p.idleMs, dir);
  const sender = await createSystem({
    appId: uid("fleet-sender"),
    redis: env.redisUrl,
    logger: pino({ level: "silent" }),
  });
  const keys = new Keyspace();
  const starts = new Map<number, number>();
  let ended = 0;
  const pollLogs = () =>
    tail.poll((line) => {
      if (line.phase === "start" && line.seq !== undefined && !starts.has(line.seq))
        starts.set(line.seq, line.hr);
      if (line.phase === "end") ended += 1;
    });
  const untilEnded = async (n: number, what: string) => {
    await waitUntil(
      () => {
        pollLogs();
        return ended >= n;
      },
      what,
      300_000,
      20,
    );
  };
  const tell = (seq: number, key: number) => sender.ref<FamilyJob>(`${family}:${key}`).tell("job", { seq });
  try {
    const base = await memoryOf(children);
    const redisBase = await usedMemory(env.admin);
    let seq = 0;

    // 1. Every id's first message, all at once.
    env.progress(`fleet: redactor, activating ${p.ids.toLocaleString("en-US")} ids`);
    const t0 = performance.now();
    await pump(p.ids, p.window, (k) => tell(seq + k, k));
    seq += p.ids;
    await untilEnded(seq, "every id's first message");
    c.add(
      name,
      "activations/s (burst of never-activated ids)",
      "/s",
      p.ids / ((performance.now() - t0) / 1000),
    );

    // 2. Memory per active instance.
    const active = await memoryOf(children);
    c.add(name, "heap per active instance", "KB", (active.heap - base.heap) / active.active / 1024);
    c.add(name, "RSS per active instance", "KB", (active.rss - base.rss) / active.active / 1024);
    const sample = Array.from({ length: Math.min(50, p.ids) }, (_, i) =>
      Math.floor((i * p.ids) / Math.min(50, p.ids)),
    );
    let activeBytes = 0;
    for (const k of sample) activeBytes += await instanceBytes(env, keys, `${family}:${k}`);
    c.add(name, "Redis bytes per active instance", "B", activeBytes / sample.length);

    // 3. Throughput to random ids, every instance active.
    env.progress(`fleet: redactor, ${p.messages.toLocaleString("en-US")} messages to random ids`);
    const t0Us = nowUs();
    const from = seq;
    const sentUs = new Map<number, number>();
    await pump(p.messages, p.window, async (i) => {
      sentUs.set(from + i, nowUs());
      await tell(from + i, randomId(p.ids));
    });
    seq += p.messages;
    await untilEnded(seq, "the random messages");
    const waits = [...sentUs].map(([s, at]) => ((starts.get(s) as number) - at) / 1000);
    const startedBy = [...sentUs.keys()].map((s) => starts.get(s) as number).sort((a, b) => a - b);
    const lastUs = Math.max(...startedBy);
    const p99Us = startedBy[Math.ceil(startedBy.length * 0.99) - 1] as number;
    c.add(name, "msg/s (random ids, no-op handler)", "msg/s", p.messages / ((lastUs - t0Us) / 1e6));
    c.add(name, "msg/s until 99 % started", "msg/s", (p.messages * 0.99) / ((p99Us - t0Us) / 1e6));
    c.add(name, "send → start p99 (random ids)", "ms", percentile(waits, 0.99));
    c.add(name, "send → start max (random ids)", "ms", Math.max(...waits));
    c.add(name, "messages started > 5 s after send", "msgs", waits.filter((w) => w > 5000).length);

    // 4. Passivation: every instance idle for idleMs.
    env.progress(`fleet: redactor, waiting for passivation (idleMs ${p.idleMs})`);
    await waitUntil(
      async () => (await memoryOf(children)).active === 0,
      "every instance to be passivated",
      120_000,
      500,
    );
    const passive = await memoryOf(children);
    c.add(name, "heap per passivated instance", "KB", (passive.heap - base.heap) / p.ids / 1024);
    let passiveBytes = 0;
    for (const k of sample) passiveBytes += await instanceBytes(env, keys, `${family}:${k}`);
    c.add(name, "Redis bytes per passivated instance", "B", passiveBytes / sample.length);
    const grown = ((await usedMemory(env.admin)) - redisBase) / 1024 / 1024;
    c.note(
      `fleet: Redis used_memory grew ${grown.toFixed(0)} MB over a redactor run, mostly message hashes (24 h TTL)`,
    );

    // 5. First message to a passivated id, then again while it is active.
    const ids = new Set<number>();
    while (ids.size < Math.min(p.latencySamples, p.ids)) ids.add(randomId(p.ids));
    for (const [label, figure] of [
      ["passivated", "first message to a passivated id"],
      ["active", "message to an active id"],
    ] as const) {
      env.progress(`fleet: redactor, latency to ${ids.size} ${label} ids`);
      const sent = new Map<number, number>();
      const list = [...ids];
      const first = seq;
      await pump(list.length, p.lanes, async (i) => {
        sent.set(first + i, nowUs());
        await tell(first + i, list[i] as number);
      });
      seq += list.length;
      await untilEnded(seq, `the ${label} ids' messages`);
      const ms = [...sent].map(([s, at]) => ((starts.get(s) as number) - at) / 1000);
      c.add(name, `${figure} p50`, "ms", percentile(ms, 0.5));
      c.add(name, `${figure} p99`, "ms", percentile(ms, 0.99));
    }
  } finally {
    await sender.shutdown();
    await Promise.all(children.map((ch) => ch.stop()));
  }
}

// ---------------------------------------------------------------------------------------------
// BullMQ

/** What a BullMQ child reports. */
interface BullReport {
  type: "count";
  completed: number;
  /** Start latencies (ms) of the jobs that carried `sentUs`, since the last report. */
  latencies: number[];
}

/** The BullMQ child: Workers for its share of the queues (`--bull-child <url> <prefix> <queues> <index> <of>`). */
async function bullChild(args: string[]): Promise<void> {
  const [url, prefix, queuesText, indexText, ofText] = args;
  const queues = Number(queuesText);
  const index = Number(indexText);
  const of = Number(ofText);
  const gc = (globalThis as { gc?: () => void }).gc;
  const connection = new Redis(url as string, { maxRetriesPerRequest: null });
  let completed = 0;
  let latencies: number[] = [];
  const workers: Worker[] = [];
  for (let q = index; q < queues; q += of) {
    const worker = new Worker(
      `${prefix}-${q}`,
      async (job) => {
        const data = job.data as { sentUs?: number };
        if (data.sentUs !== undefined) latencies.push((nowUs() - data.sentUs) / 1000);
      },
      { connection, concurrency: 1 },
    );
    worker.on("completed", () => {
      completed += 1;
    });
    worker.on("error", () => {});
    workers.push(worker);
  }
  await Promise.all(workers.map((w) => w.waitUntilReady()));
  process.on("message", (message) => {
    if (message === "memory") {
      gc?.();
      const { rss, heapUsed } = process.memoryUsage();
      process.send?.({ type: "memory", rss, heap: heapUsed, active: workers.length });
    } else if (message === "count") {
      process.send?.({ type: "count", completed, latencies });
      latencies = [];
    }
  });
  const stop = async () => {
    await Promise.all(workers.map((w) => w.close(true).catch(() => {})));
    connection.disconnect();
    process.exit(0);
  };
  process.on("SIGTERM", () => void stop());
  process.stdout.write("ready\n");
}

/** Memory of a BullMQ child before its Workers exist, for the per-Worker figure. */
async function bullBaseline(url: string): Promise<{ rss: number; heap: number }> {
  const child = new Child(
    fork(SELF, ["--bull-child", url, "none", "0", "0", "1"], {
      cwd: ROOT,
      execArgv: ["--import", "tsx", "--expose-gc"],
      stdio: ["ignore", "pipe", "pipe", "ipc"],
    }),
  );
  try {
    await child.ready(60_000);
    const m = await child.ask<MemoryReport>("memory", "memory");
    return { rss: m.rss, heap: m.heap };
  } finally {
    await child.stop();
  }
}

/** One repetition of BullMQ at `queues` queues; throws when that size cannot start. */
async function bullRun(env: BenchEnv, p: FleetParams, queues: number, c: Collector): Promise<void> {
  const name = `BullMQ, ${queues.toLocaleString("en-US")} queues`;
  const prefix = uid("drone-q");
  await env.admin.flushall("SYNC");
  // One blocking connection per Worker: raise the server's client limit (the fd limit caps it).
  await env.admin.config("SET", "maxclients", String(Math.max(10_000, queues + 1000))).catch(() => {});
  const base = await bullBaseline(env.redisUrl);
  env.progress(
    `fleet: BullMQ, starting ${queues.toLocaleString("en-US")} Workers in ${p.processes} processes`,
  );
  const children = Array.from(
    { length: p.processes },
    (_, i) =>
      new Child(
        fork(SELF, ["--bull-child", env.redisUrl, prefix, String(queues), String(i), String(p.processes)], {
          cwd: ROOT,
          execArgv: ["--import", "tsx", "--expose-gc"],
          stdio: ["ignore", "pipe", "pipe", "ipc"],
        }),
      ),
  );
  const shared = new Redis(env.redisUrl, { maxRetriesPerRequest: null });
  const producers = new Map<number, Queue>();
  const queue = (q: number) => {
    let found = producers.get(q);
    if (!found) {
      found = new Queue(`${prefix}-${q}`, { connection: shared });
      producers.set(q, found);
    }
    return found;
  };
  const report = async () => {
    const reports = await Promise.all(children.map((ch) => ch.ask<BullReport>("count", "count")));
    return {
      completed: reports.reduce((a, r) => a + r.completed, 0),
      latencies: reports.flatMap((r) => r.latencies),
    };
  };
  try {
    await Promise.all(children.map((ch) => ch.ready(300_000)));
    const started = await memoryOf(children);
    c.add(name, "heap per active instance", "KB", (started.heap - base.heap * p.processes) / queues / 1024);
    c.add(name, "RSS per active instance", "KB", (started.rss - base.rss * p.processes) / queues / 1024);

    env.progress(`fleet: BullMQ, ${p.messages.toLocaleString("en-US")} jobs to random queues`);
    const t0 = performance.now();
    await pump(p.messages, p.window, (i) => queue(randomId(queues)).add("job", { seq: i, sentUs: nowUs() }));
    const waits: number[] = [];
    await waitUntil(
      async () => {
        const r = await report();
        waits.push(...r.latencies);
        return r.completed >= p.messages;
      },
      "the random jobs",
      300_000,
      100,
    );
    c.add(name, "msg/s (random ids, no-op handler)", "msg/s", p.messages / ((performance.now() - t0) / 1000));
    c.add(name, "send → start p99 (random ids)", "ms", percentile(waits, 0.99));
    c.add(name, "send → start max (random ids)", "ms", Math.max(...waits));

    // The first job to a queue idle for a while: its Worker waits in BZPOPMIN.
    await sleep(3000);
    const ids = new Set<number>();
    while (ids.size < Math.min(p.latencySamples, queues)) ids.add(randomId(queues));
    const list = [...ids];
    await report();
    await pump(list.length, p.lanes, (i) => queue(list[i] as number).add("job", { sentUs: nowUs() }));
    const latencies: number[] = [];
    await waitUntil(
      async () => {
        latencies.push(...(await report()).latencies);
        return latencies.length >= list.length;
      },
      "the latency jobs",
      60_000,
      50,
    );
    c.add(name, "first message to an idle queue p50", "ms", percentile(latencies, 0.5));
    c.add(name, "first message to an idle queue p99", "ms", percentile(latencies, 0.99));
  } finally {
    await Promise.all([...producers.values()].map((q) => q.close().catch(() => {})));
    shared.disconnect();
    await Promise.all(children.map((ch) => ch.stop(30_000)));
  }
}

// ---------------------------------------------------------------------------------------------

/** The fleet scenario. */
export const fleet: Scenario<FleetParams> = {
  name: "fleet",
  title:
    "an actor family of 10,000 ids over 3 processes: activation latency, memory per instance, msg/s; BullMQ, a queue per id",
  full: {
    ids: ISSUE_IDS,
    processes: 3,
    messages: 30_000,
    window: 256,
    latencySamples: 1000,
    lanes: 4,
    idleMs: 5000,
    bullQueues: [1_000, 10_000],
  },
  smoke: {
    ids: 300,
    processes: 2,
    messages: 600,
    window: 64,
    latencySamples: 30,
    lanes: 2,
    idleMs: 1500,
    bullQueues: [30],
  },
  async run(env, p) {
    const c = new Collector();
    const dir = mkdtempSync(join(tmpdir(), "redactor-fleet-"));
    const redactorName = `redactor, ${p.processes} processes`;
    let largest: string | undefined;
    try {
      for (let rep = 0; rep < env.reps; rep++) {
        await redactorRun(env, p, c, dir);
        for (const queues of p.bullQueues) {
          try {
            await bullRun(env, p, queues, c);
            largest = `BullMQ, ${queues.toLocaleString("en-US")} queues`;
          } catch (err) {
            c.note(
              `fleet: BullMQ at ${queues.toLocaleString("en-US")} queues failed: ${(err as Error).message.slice(0, 200)}`,
            );
            break;
          }
        }
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
      await env.admin.config("SET", "maxclients", "10000").catch(() => {});
    }
    if (largest !== undefined) {
      c.ratio("msg/s (random ids, no-op handler)", redactorName, largest);
      c.ratio("heap per active instance", redactorName, largest);
      c.note(`fleet: the BullMQ size compared in the ratio rows is the largest that ran here: ${largest}`);
    }
    c.note(
      "fleet: latency is from just before tell/add to the handler's start, both read on the machine's monotonic clock; " +
        "a BullMQ Worker is never passivated: its idle queue is served by a blocked BZPOPMIN",
    );
    c.note(
      "fleet: memory is read after a GC in each worker process, over its reading before any instance (redactor) or Worker (BullMQ)",
    );
    const size = `${p.ids.toLocaleString("en-US")} ids over ${p.processes} processes, ${p.messages.toLocaleString("en-US")} messages`;
    return c.result("fleet", p.ids < ISSUE_IDS ? `${size} (issue: 10,000 ids, scaled down)` : size);
  },
};

/** `npx tsx bench/fleet.ts`: the scenario alone, on a throw-away server. */
async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      reps: { type: "string", default: "1" },
      smoke: { type: "boolean", default: false },
      ids: { type: "string" },
      processes: { type: "string" },
      messages: { type: "string" },
      queues: { type: "string" },
    },
  });
  const reps = Number(values.reps);
  const base = values.smoke ? fleet.smoke : fleet.full;
  const params: FleetParams = {
    ...base,
    ...(values.ids ? { ids: Number(values.ids) } : {}),
    ...(values.processes ? { processes: Number(values.processes) } : {}),
    ...(values.messages ? { messages: Number(values.messages) } : {}),
    ...(values.queues ? { bullQueues: values.queues.split(",").map(Number) } : {}),
  };
  const server = await startRedis();
  const started = Date.now();
  const progress = (line: string) =>
    process.stderr.write(`[${((Date.now() - started) / 1000).toFixed(0).padStart(4)} s] ${line}\n`);
  try {
    const scenario = { ...fleet, full: params, smoke: params };
    const report = await runScenarios({ scenarios: [scenario], reps, profile: "full", server, progress });
    console.log(renderTable(report.results, reps));
  } finally {
    await server.stop();
  }
}

const invoked = process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href;
if (invoked && process.argv.includes("--bull-child")) {
  bullChild(process.argv.slice(process.argv.indexOf("--bull-child") + 1)).catch((err: unknown) => {
    console.error(err);
    process.exit(1);
  });
} else if (invoked) {
  main().catch((err: unknown) => {
    console.error(err);
    process.exitCode = 1;
  });
}
