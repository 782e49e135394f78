/**
 * Single activation with real processes (src/activation.ts): several processes spawn the same
 * actor id, one owns it and the others stand by. The owner is stopped (`system.stop`), frozen
 * past its liveness limit (SIGSTOP … SIGCONT) or killed (SIGKILL); a process standing by takes
 * over, and handler starts never happen in two processes at once. `activation: "shared"` keeps
 * competing consumers, and the fence is Redis' doing: a claim by a non-owner is refused there.
 *
 * The worker processes (test/fixtures/activation-worker.ts) spawn actors on command, so that a
 * few of them serve every test of a backend: each test uses an actor id of its own, and the
 * tests that freeze or kill a process come last (a test run alone starts what it needs). Each
 * actor's run log records handler starts and ends and activation events with `hr`:
 * CLOCK_MONOTONIC in µs, one clock for every process of the machine (this one too), so times of
 * different processes compare exactly. Takeover times are measured on it and printed in
 * heartbeat periods. The last suite holds open the race between a takeover and the frozen owner's resume.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { ActivationConflictError, type ActorRef, defineActor } from "../src/index.js";
import type { Mailbox } from "../src/mailbox.js";
import type { Command, Seq } from "./fixtures/activation-worker.js";
import { type Backend, describeBackends, useBackendSystems } from "./harness/backends.js";
import { uniqueId, useRedis } from "./harness/redis.js";
import { useSystems, waitFor } from "./harness/system.js";

/** The workers' heartbeat period, ms: ownership is stale three periods after the last beat. */
const HB = 250;
/** The same, in µs (the unit of the run logs' `hr`). */
const HB_US = HB * 1000;

const dir = mkdtempSync(join(tmpdir(), "redactor-activation-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A line of a run log (see the fixture). */
interface Line {
  actor: string;
  pid: number;
  node: string;
  at: number;
  /** CLOCK_MONOTONIC, µs. */
  hr: number;
  event?: string;
  phase?: "start" | "end";
  seq?: number;
  id?: string;
  attempt?: number;
  owner?: string;
  previous?: string;
  during?: string;
}

/** A handler run: start and, unless its process died in it, end (µs). */
interface Run {
  seq: number;
  pid: number;
  start: number;
  end: number | undefined;
}

/** Now on the workers' clock, µs. */
const hrNow = (): number => Number(process.hrtime.bigint() / 1000n);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const inPeriods = (us: number): string => `${(us / 1000).toFixed(0)} ms = ${(us / HB_US).toFixed(2)} periods`;

/** Every complete line of a run log (a line being appended right now is left for the next read). */
function lines(file: string): Line[] {
  if (!existsSync(file)) return [];
  const text = readFileSync(file, "utf8");
  return text
    .slice(0, text.lastIndexOf("\n") + 1)
    .split("\n")
    .filter((l) => l !== "")
    .map((l) => JSON.parse(l) as Line);
}
const startsOf = (log: Line[], pid?: number): Line[] =>
  log.filter((l) => l.phase === "start" && (pid === undefined || l.pid === pid));
const eventsOf = (log: Line[], event: string, pid?: number): Line[] =>
  log.filter((l) => l.event === event && (pid === undefined || l.pid === pid));

/** Every handler run in the log: a start paired with the next end of its seq in its process. */
function runsOf(log: Line[]): Run[] {
  const open = new Map<string, Run>();
  const runs: Run[] = [];
  for (const l of log) {
    if (l.seq === undefined) continue;
    const key = `${l.pid}/${l.seq}`;
    if (l.phase === "start") {
      const run: Run = { seq: l.seq, pid: l.pid, start: l.hr, end: undefined };
      open.set(key, run);
      runs.push(run);
    } else if (l.phase === "end") {
      const run = open.get(key);
      if (run) run.end = l.hr;
      open.delete(key);
    }
  }
  return runs;
}

/** How many runs of each seq started. */
function startCounts(log: Line[]): Map<number, number> {
  const counts = new Map<number, number>();
  for (const l of startsOf(log)) counts.set(l.seq as number, (counts.get(l.seq as number) ?? 0) + 1);
  return counts;
}

/** The seqs 0 … n-1 that no run finished. */
function unfinished(log: Line[], n: number): number[] {
  const ended = new Set(log.filter((l) => l.phase === "end").map((l) => l.seq));
  return Array.from({ length: n }, (_, i) => i).filter((i) => !ended.has(i));
}

/** Adjacent starts (in log order) whose seq goes down. */
function inversions(starts: Line[]): number {
  let n = 0;
  for (let i = 1; i < starts.length; i++)
    if ((starts[i]?.seq as number) < (starts[i - 1]?.seq as number)) n++;
  return n;
}

/** Sends seqs `from` … `to - 1` in order: chunks pipelined on one connection, so timestamps rise. */
async function send(ref: ActorRef<Seq>, from: number, to: number, waitMs = 0): Promise<void> {
  for (let chunk = from; chunk < to; chunk += 100) {
    const sends: Promise<string>[] = [];
    for (let seq = chunk; seq < Math.min(chunk + 100, to); seq++)
      sends.push(ref.tell("job", { seq, waitMs }));
    await Promise.all(sends);
  }
}

/** A worker process (test/fixtures/activation-worker.ts). */
interface Worker {
  readonly child: ChildProcess;
  readonly pid: number;
  /** Its system's node id. */
  readonly node: string;
  alive(): boolean;
  /** Runs a command; resolves when the worker answered it. */
  command(command: Command): Promise<void>;
  /** Sends SIGKILL or SIGTERM and waits for the process to exit. */
  kill(signal: "SIGKILL" | "SIGTERM"): Promise<void>;
}

const FIXTURE = fileURLToPath(new URL("./fixtures/activation-worker.ts", import.meta.url));

/**
 * The environment that points a worker at `backend`: REDIS_URL on a server, REDIS_CLUSTER on a
 * cluster, the other one empty (a value inherited from the test run must not send it elsewhere).
 */
function targetOf(backend: Backend): Record<string, string> {
  if (backend.cluster) return { REDIS_URL: "", REDIS_CLUSTER: backend.cluster.startupNodes.join(",") };
  return { REDIS_URL: backend.server?.url ?? "", REDIS_CLUSTER: "" };
}

/** Starts a worker on the Redis `target` names (see targetOf) and waits until it is ready. */
async function startActivationWorker(target: Record<string, string>): Promise<Worker> {
  // `node --import tsx`, not the tsx binary: one process, so a signal reaches the worker itself.
  const child = spawn(process.execPath, ["--import", "tsx", FIXTURE], {
    env: { ...process.env, ...target, APP_ID: uniqueId("w"), HEARTBEAT_MS: String(HB) },
    stdio: ["pipe", "pipe", "pipe"],
  });
  let out = "";
  child.stdout?.on("data", (d) => {
    out += d;
  });
  child.stderr?.on("data", (d) => {
    out += d;
  });
  const alive = () => child.exitCode === null && child.signalCode === null;
  await waitFor(() => out.includes("ready\n") || !alive(), 20_000, "a worker to start");
  const node = out.match(/^node (.+)$/m)?.[1];
  if (!out.includes("ready\n") || node === undefined) throw new Error(`worker exited early: ${out}`);
  return {
    child,
    pid: child.pid as number,
    node,
    alive,
    async command(command) {
      const reply = `${command.op === "spawn" ? "spawned" : "stopped"} ${command.actor}\n`;
      const failed = `failed ${command.actor} `;
      child.stdin?.write(`${JSON.stringify(command)}\n`);
      await waitFor(() => out.includes(reply) || out.includes(failed) || !alive(), 10_000, reply.trim());
      if (!out.includes(reply)) throw new Error(`${command.op} ${command.actor} failed: ${out}`);
    },
    async kill(signal) {
      if (!alive()) return;
      const exited = new Promise((r) => child.once("exit", r));
      child.kill(signal);
      await exited;
    },
  };
}

describeBackends(
  "single activation across processes",
  (backend) => {
    const newSystem = useBackendSystems(backend);
    const pool: Worker[] = [];

    afterAll(async () => {
      await Promise.all(
        pool.splice(0).map(async (w) => {
          w.child.kill("SIGCONT");
          await w.kill("SIGKILL");
        }),
      );
    });

    /** `count` live workers of the pool, started when missing. */
    async function workers(count: number): Promise<Worker[]> {
      for (let i = pool.length - 1; i >= 0; i--) if (!pool[i]?.alive()) pool.splice(i, 1);
      const missing = Math.max(0, count - pool.length);
      pool.push(
        ...(await Promise.all(
          Array.from({ length: missing }, () => startActivationWorker(targetOf(backend()))),
        )),
      );
      return pool.slice(0, count);
    }

    /**
     * Spawns a new actor in `count` workers at once; returns its id, run log, and which worker
     * owns it (the one that did not stand by) and which stand by.
     */
    async function spawnActor(
      count: number,
      label: string,
      options: { activation?: "single" | "shared"; claimBatch?: number } = {},
    ): Promise<{ actor: string; log: string; group: Worker[]; owner: Worker; standbys: Worker[] }> {
      const group = await workers(count);
      const actor = uniqueId(label);
      const log = join(dir, `${actor}.jsonl`);
      await Promise.all(group.map((w) => w.command({ op: "spawn", actor, log, ...options })));
      const standing = new Set(eventsOf(lines(log), "actor.standby").map((l) => l.pid));
      const owner = group.find((w) => !standing.has(w.pid)) as Worker;
      return { actor, log, group, owner, standbys: group.filter((w) => w !== owner) };
    }

    it("three processes spawn one actor: one runs all 2,000 messages, once each, in order; two stand by", async () => {
      const { actor, log, owner, standbys } = await spawnActor(3, "single");
      const sender = await newSystem();
      const n = 2000;
      await send(sender.ref<Seq>(actor), 0, n);
      await waitFor(() => unfinished(lines(log), n).length === 0, 20_000, "every message to run");

      const runLog = lines(log);
      const starts = startsOf(runLog);
      expect(starts).toHaveLength(n);
      expect(new Set(starts.map((l) => l.pid))).toEqual(new Set([owner.pid]));
      expect(inversions(starts)).toBe(0);
      expect((await sender.status(actor))?.nodes).toEqual([owner.node]);
      for (const w of standbys) {
        expect(eventsOf(runLog, "actor.standby", w.pid).map((l) => l.owner)).toEqual([owner.node]);
      }
      expect(eventsOf(runLog, "actor.started").map((l) => l.pid)).toEqual([owner.pid]);
      expect(eventsOf(runLog, "actor.activated")).toEqual([]);
    }, 40_000);

    it('activation "shared": two processes both consume, each message once', async () => {
      const { actor, log, group } = await spawnActor(2, "shared", { activation: "shared", claimBatch: 5 });
      const n = 300;
      await send((await newSystem()).ref<Seq>(actor), 0, n, 3);
      await waitFor(() => unfinished(lines(log), n).length === 0, 20_000, "every message to run");

      const runLog = lines(log);
      for (const w of group) expect(startsOf(runLog, w.pid).length).toBeGreaterThan(0);
      expect([...startCounts(runLog).values()].every((c) => c === 1)).toBe(true);
      expect(eventsOf(runLog, "actor.standby")).toEqual([]);
    }, 40_000);

    it("the fence is in Redis: a claim by a non-owner through the mailbox is refused and claims nothing", async () => {
      const actor = uniqueId("fence");
      let open: () => void = () => {};
      const gate = new Promise<void>((r) => {
        open = r;
      });
      const definition = defineActor<Seq>({ id: actor, claimBatch: 1, handlers: { job: () => gate } });
      const owner = await newSystem({ heartbeatMs: HB });
      const other = await newSystem({ heartbeatMs: HB });
      const standing: string[] = [];
      other.events.on("actor.standby", (e) => standing.push(e.owner));
      await owner.spawn(definition);
      await other.spawn(definition);
      expect(standing).toEqual([owner.nodeId]);
      const admin = backend().client();
      const keys = backend().keys;
      expect(await admin.get(keys.activation(actor))).toBe(owner.nodeId);
      try {
        await send(owner.ref<Seq>(actor), 0, 5);
        // The owner holds one message (its handler waits on the gate); four wait in the inbox.
        await waitFor(
          async () => (await admin.zcard(keys.processing(actor))) === 1,
          5000,
          "the owner's claim",
        );
        expect(await admin.zcard(keys.inbox(actor))).toBe(4);

        // The process standing by claims through its mailbox, past its cell's own checks.
        const mailbox = (other as unknown as { mailbox: Mailbox }).mailbox;
        const refused = await mailbox.claim(actor, 10, `${other.nodeId}/intruder`, other.nodeId);
        expect(refused.fenced).toBe(true);
        expect(refused.claimed).toEqual([]);
        expect(await admin.zcard(keys.inbox(actor))).toBe(4);
        expect(await admin.zcard(keys.processing(actor))).toBe(1);
        // The same call naming the owner's node is let through: the script checks the key and nothing else.
        const allowed = await mailbox.claim(actor, 1, `${owner.nodeId}/check`, owner.nodeId);
        expect(allowed.fenced).toBe(false);
        expect(allowed.claimed).toHaveLength(1);
      } finally {
        open();
      }
    });

    it("system.stop of the owner: a standby takes over within about one period; each message once, in order", async () => {
      const { actor, log, owner, standbys } = await spawnActor(2, "stopped");
      const heir = standbys[0] as Worker;
      const n = 80;
      await send((await newSystem()).ref<Seq>(actor), 0, n, 10);
      await waitFor(() => startsOf(lines(log)).length >= 20, 10_000, "20 runs");
      await owner.command({ op: "stop", actor });
      await waitFor(() => unfinished(lines(log), n).length === 0, 20_000, "every message to run");

      const runLog = lines(log);
      const oldEnd = Math.max(
        ...runsOf(runLog)
          .filter((r) => r.pid === owner.pid)
          .map((r) => r.end as number),
      );
      const firstNew = startsOf(runLog, heir.pid)[0] as Line;
      const takeover = firstNew.hr - oldEnd;
      console.log(
        `[${backend().name}] graceful takeover (first start in heir - last end in stopped owner): ${inPeriods(takeover)}`,
      );
      // The actor was free, not taken from a dead owner.
      expect(eventsOf(runLog, "actor.activated", heir.pid).map((l) => l.previous)).toEqual([""]);
      expect(oldEnd).toBeLessThan(firstNew.hr);
      // Released at the stop: the standby's next try (at most a period later) wins.
      expect(takeover).toBeLessThan(2 * HB_US);
      expect(startsOf(runLog)).toHaveLength(n);
      expect(new Set(startsOf(runLog).map((l) => l.seq)).size).toBe(n);
      expect(inversions(startsOf(runLog))).toBe(0);
    }, 40_000);

    it("SIGSTOP of the owner past 4 periods: a standby takes over; after SIGCONT the frozen one starts nothing and stands by", async () => {
      const { actor, log, owner, standbys } = await spawnActor(2, "frozen");
      const heir = standbys[0] as Worker;
      const n = 60;
      await send((await newSystem()).ref<Seq>(actor), 0, n, 20);
      await waitFor(() => startsOf(lines(log)).length >= 20, 10_000, "20 runs");
      // On the workers' clock: at the latest when the process froze, at the earliest when it resumed.
      owner.child.kill("SIGSTOP");
      const stoppedAt = hrNow();
      let continuedAt = Number.POSITIVE_INFINITY;
      try {
        await waitFor(
          () => eventsOf(lines(log), "actor.activated", heir.pid).length > 0,
          10 * HB,
          "the standby to take over while the owner is frozen",
        );
        // Frozen for 6 periods at least.
        await sleep(6 * HB - (hrNow() - stoppedAt) / 1000);
      } finally {
        continuedAt = hrNow();
        owner.child.kill("SIGCONT");
      }
      await waitFor(
        () =>
          unfinished(lines(log), n).length === 0 &&
          eventsOf(lines(log), "actor.standby", owner.pid).length > 0,
        20_000,
        "every message to run and the resumed process to stand by",
      );
      // Time for a stray start by the resumed process to show.
      await sleep(2 * HB);

      const runLog = lines(log);
      const oldStarts = startsOf(runLog, owner.pid);
      const newStarts = startsOf(runLog, heir.pid);
      const activated = eventsOf(runLog, "actor.activated", heir.pid)[0] as Line;
      expect(activated.previous).toBe(owner.node);
      expect(activated.hr).toBeLessThan(continuedAt);
      const firstNew = newStarts[0] as Line;
      const lastOld = oldStarts.at(-1) as Line;
      console.log(
        `[${backend().name}] SIGSTOP takeover (first start in heir - last start in frozen owner): ` +
          `${inPeriods(firstNew.hr - lastOld.hr)}; activation - freeze: ${inPeriods(activated.hr - stoppedAt)}`,
      );
      // Starts never interleave: the frozen process started nothing after the heir's first start,
      // in particular nothing after SIGCONT …
      expect(lastOld.hr).toBeLessThan(firstNew.hr);
      expect(oldStarts.filter((l) => l.hr > continuedAt)).toEqual([]);
      // … found itself fenced, and stands by for the heir.
      for (const event of ["actor.deactivated", "actor.standby"]) {
        const seen = eventsOf(runLog, event, owner.pid);
        expect(seen.map((l) => l.owner)).toEqual([heir.node]);
        expect(seen[0]?.hr).toBeGreaterThan(continuedAt);
      }

      // The handler in hand at the freeze finishes after SIGCONT; its outcome is refused (its
      // lease was taken back at the takeover) and the heir ran its message again. Its interval
      // overlaps the heir's ownership: the overlap a frozen owner cannot be kept from
      // (src/activation.ts), measured and printed here.
      const runs = runsOf(runLog);
      const inHand = runs.find((r) => r.pid === owner.pid && (r.end === undefined || r.end > stoppedAt));
      if (inHand) {
        const end = inHand.end as number;
        expect(end).toBeGreaterThan(continuedAt);
        const overlapping = runs.filter(
          (r) => r.pid === heir.pid && r.start < end && (r.end ?? Number.POSITIVE_INFINITY) > inHand.start,
        );
        const rerun = runs.find((r) => r.pid === heir.pid && r.seq === inHand.seq);
        const inHandId = oldStarts.find((l) => l.seq === inHand.seq)?.id;
        const lost = eventsOf(runLog, "lease.lost", owner.pid).filter((l) => l.id === inHandId);
        console.log(
          `[${backend().name}] in hand at the freeze: seq ${inHand.seq}, started ${inPeriods(stoppedAt - inHand.start)} ` +
            `before the freeze, ended ${inPeriods(end - continuedAt)} after SIGCONT; its interval overlapped the ` +
            `heir's ownership by ${inPeriods(end - firstNew.hr)} and ${overlapping.length} of the heir's runs; ` +
            `the heir's run of seq ${inHand.seq} ended ${inPeriods(end - (rerun?.end ?? end))} before the stale run ` +
            `did; lease.lost during ${lost.map((l) => l.during).join(", ")}`,
        );
        // The heir ran it again, to its end, and the resumed process was told its lease was gone.
        expect(rerun?.end).toBeDefined();
        expect(lost.length).toBeGreaterThan(0);
      } else {
        console.log(`[${backend().name}] no handler was in hand at the freeze`);
      }
      // At least once; only the message in hand ran twice.
      const twice = [...startCounts(runLog)].filter(([, c]) => c > 1).map(([seq]) => seq);
      expect(twice).toEqual(inHand ? [inHand.seq] : []);
    }, 40_000);

    it("SIGKILL of the owner mid-stream: one of two standbys takes over in 3-4 periods; nothing lost, no overlap", async () => {
      const { actor, log, owner, standbys } = await spawnActor(3, "killed");
      const n = 300;
      await send((await newSystem()).ref<Seq>(actor), 0, n, 3);
      await waitFor(() => startsOf(lines(log)).length >= 60, 10_000, "60 runs");
      await owner.kill("SIGKILL");
      const killedAt = hrNow();
      await waitFor(() => unfinished(lines(log), n).length === 0, 20_000, "every message to run");

      const runLog = lines(log);
      const activated = eventsOf(runLog, "actor.activated");
      expect(activated.map((l) => l.previous)).toEqual([owner.node]);
      const heir = standbys.find((w) => w.pid === activated[0]?.pid) as Worker;
      const other = standbys.find((w) => w !== heir) as Worker;
      expect(startsOf(runLog, other.pid)).toEqual([]);

      const lastOld = startsOf(runLog, owner.pid).at(-1) as Line;
      const firstNew = startsOf(runLog, heir.pid)[0] as Line;
      const takeover = firstNew.hr - lastOld.hr;
      console.log(
        `[${backend().name}] SIGKILL takeover (first start in heir - last start in killed owner): ${inPeriods(takeover)}`,
      );
      // The heartbeat key lives 3 periods from the last beat (a period before the kill at most,
      // give or take a late beat on a busy machine) and a standby tries every period: 2 to 4
      // periods, plus the heir's start. Never before the owner's heartbeat went stale.
      expect(takeover).toBeGreaterThan(1.5 * HB_US);
      expect(takeover).toBeLessThan(6 * HB_US);

      // No overlap: every run of the killed process (the one it died in ends at the kill at the
      // latest) was over before the heir's first start.
      const runs = runsOf(runLog);
      const oldEnd = Math.max(...runs.filter((r) => r.pid === owner.pid).map((r) => r.end ?? killedAt));
      expect(oldEnd).toBeLessThan(firstNew.hr);
      // At least once: only the message in hand at the kill ran twice, and its first run never ended.
      const twice = [...startCounts(runLog)].filter(([, c]) => c > 1).map(([seq]) => seq);
      expect(twice.length).toBeLessThanOrEqual(1);
      for (const seq of twice)
        expect(runs.find((r) => r.seq === seq && r.pid === owner.pid)?.end).toBeUndefined();
      // What the killed one held went back first: the heir ran the rest in order.
      expect(inversions(startsOf(runLog, heir.pid))).toBe(0);
    }, 40_000);
  },
  // Nothing fails over here: a cluster of 3 masters without replicas starts faster.
  { cluster: { replicasPerMaster: 0 } },
);

/**
 * KNOWN BUG, reproduced: the fence covers claims only, and the heir takes the previous owner's
 * leases back with a recover that judges holders by their heartbeat *at that moment*. When the
 * frozen owner resumes (and beats) after the heir's takeover (activation CAS) but before the
 * heir's recover, the recover leaves its leases alone; the resumed owner then renews them and
 * starts the rest of its claimed batch (up to claimBatch messages) while the heir claims and runs
 * newer messages: handler starts in two processes at once, and FIFO broken. Here the window is
 * held open by freezing the heir the instant its CAS is seen (a keyspace notification on the
 * activation key); in production it is whatever delays the heir's recover (a slow round trip, a
 * GC pause; on a cluster the recover is three round trips). Fixed twice over: the heir takes
 * back the previous owner's leases whatever its heartbeat says, and lease renewal (checked
 * before every message start) is fenced by the activation key like the claim.
 */
describe("single activation: the heir's recover races the frozen owner's resume [server]", () => {
  const redis = useRedis({ args: ["--notify-keyspace-events", "K$g"] });
  const newSystem = useSystems(redis);

  it("a frozen owner resumed between the heir's takeover and its recover starts nothing after the heir's first start", async () => {
    const [a, b] = await Promise.all(
      [1, 2].map(() => startActivationWorker({ REDIS_URL: redis().url, REDIS_CLUSTER: "" })),
    );
    const group = [a, b] as Worker[];
    const sub = redis().client();
    try {
      const actor = uniqueId("race");
      const log = join(dir, `${actor}.jsonl`);
      await Promise.all(group.map((w) => w.command({ op: "spawn", actor, log })));
      const standing = new Set(eventsOf(lines(log), "actor.standby").map((l) => l.pid));
      const owner = group.find((w) => !standing.has(w.pid)) as Worker;
      const heir = group.find((w) => w !== owner) as Worker;
      // The heir is frozen as soon as its takeover is written (before its recover is sent).
      let heirFrozen = false;
      await sub.subscribe(`__keyspace@0__:activation:${actor}`);
      sub.on("message", () => {
        if (heirFrozen) return;
        heir.child.kill("SIGSTOP");
        heirFrozen = true;
      });
      const n = 150;
      await send((await newSystem()).ref<Seq>(actor), 0, n, 20);
      await waitFor(() => startsOf(lines(log)).length >= 5, 10_000, "5 runs");
      owner.child.kill("SIGSTOP");
      await waitFor(() => heirFrozen, 10 * HB, "the heir's takeover");
      // The owner resumes and beats again; then the heir resumes and recovers: nothing is dead.
      owner.child.kill("SIGCONT");
      await sleep(3 * HB);
      heir.child.kill("SIGCONT");
      await waitFor(() => unfinished(lines(log), n).length === 0, 20_000, "every message to run");

      const runLog = lines(log);
      const firstNew = startsOf(runLog, heir.pid)[0] as Line;
      expect(startsOf(runLog, owner.pid).filter((l) => l.hr > firstNew.hr)).toEqual([]);
      expect(inversions(startsOf(runLog))).toBe(0);
    } finally {
      await sub.quit();
      for (const w of group) {
        w.child.kill("SIGCONT");
        await w.kill("SIGKILL");
      }
    }
  }, 40_000);
});

describe("single activation: modes and endings [server]", () => {
  const redis = useRedis();
  const newSystem = useSystems(redis);
  const fast = { heartbeatMs: 200, sweepMs: 200 };

  it("refuses to mix activation modes for one id, whichever comes first", async () => {
    const [a, b] = await Promise.all([newSystem(fast), newSystem(fast)]);
    const single = uniqueId("mode-single");
    await a.spawn(defineActor({ id: single, handlers: { t: () => {} } }));
    await expect(
      b.spawn(defineActor({ id: single, activation: "shared", handlers: { t: () => {} } })),
    ).rejects.toThrow(ActivationConflictError);
    const shared = uniqueId("mode-shared");
    await a.spawn(defineActor({ id: shared, activation: "shared", handlers: { t: () => {} } }));
    await expect(b.spawn(defineActor({ id: shared, handlers: { t: () => {} } }))).rejects.toThrow(
      /consumed with activation "shared"/,
    );
  });

  it("a temporary actor that crashes and is not restarted lets a standby take it over", async () => {
    const [a, b] = await Promise.all([newSystem(fast), newSystem(fast)]);
    const id = uniqueId("temporary");
    const ran: string[] = [];
    const definition = (who: string) =>
      defineActor<{ t: { payload: { crash?: boolean } } }>({
        id,
        restart: "temporary",
        handlers: {
          t: (p) => {
            ran.push(who);
            if (p.crash && who === "a") throw new Error("boom");
          },
        },
      });
    await a.spawn(definition("a"));
    await b.spawn(definition("b"));
    const sender = await newSystem(fast);
    await sender.ref(id).tell("t", { crash: true });
    await waitFor(() => ran.includes("a"), 5000, "the crash");
    await sender.ref(id).tell("t", {});
    // b stood by; a's actor ended for good, so b takes over within a heartbeat period or two.
    await waitFor(() => ran.includes("b"), 5000, "the standby to take over");
    expect((await sender.status(id))?.nodes).toEqual([b.nodeId]);
  });
});
