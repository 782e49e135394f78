/**
 * Faults on a Redis Cluster, measured while messages flow: a slot moved (MOVED, and TRYAGAIN /
 * ASK while it is half moved), slots resharded with redis-cli, a master killed and its replica
 * promoted (then the old master restarted, coming back as a replica), a planned (manual)
 * failover, and a replica restarted; each without and with `durability: { replicas: 1 }`.
 *
 * One trial: a fresh consumer system serves a few actors whose slots are all on the master the
 * fault hits; a fresh sender system sends `messages` tells to them at a steady rate, each with
 * its own id, retrying a send that rejects (ReplicationError, connection errors, too many
 * redirections) with the SAME id until it resolves (a repeat is a duplicate the send skips).
 * The fault starts once a fraction of the messages went out. Afterwards the trial waits until
 * every acknowledged message ran and the actors' inboxes and processing sets are empty, then
 * counts:
 *   - lost: sends that resolved (acknowledged) but whose message never started;
 *   - run twice: messages whose handler started more than once;
 *   - retried sends: send attempts that rejected and were repeated;
 *   - time to recover: the longest pause in handler starts from the fault's start to the end of
 *     the stream (the stream runs at `rate` msg/s, so without a fault the pause is a few ms).
 *
 * `runFaultTrial` is also what test/cluster-faults.test.ts runs, at a small size.
 *
 * Run it: `npx tsx bench/cluster-faults.ts [--trials 3] [--messages 3000] [--rate 400]
 * [--seed 1] [--faults failover,reshard] [--node-timeout 1000]`. It starts its own throw-away
 * 3-master / 3-replica cluster (redis-server and redis-cli on the PATH) and prints one Markdown
 * table with its parameters; progress goes to stderr.
 */
import { createRequire } from "node:module";
import { availableParallelism } from "node:os";
import { Writable } from "node:stream";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import calculateSlot from "cluster-key-slot";
import type { ClusterOptions } from "ioredis";
import { type Logger, pino } from "pino";
import { type ActorSystem, createSystem, type Durability, defineActor } from "../src/index.js";
import { startCluster, type TestCluster, type TestClusterNode } from "../test/harness/redis-cluster.js";
import { sleep } from "./util.js";

/** The faults a trial can inject. */
export const FAULTS = [
  "slot-move",
  "slow-slot-move",
  "reshard",
  "failover",
  "manual-failover",
  "replica-restart",
] as const;

/** One of FAULTS. */
export type FaultName = (typeof FAULTS)[number];

/** What each fault does, for the table's notes. */
export const FAULT_DESCRIPTIONS: Readonly<Record<FaultName, string>> = {
  "slot-move":
    "the slot of the busiest actor moves to another master: half of its keys first, then a pause " +
    "(`askWindowMs`, 500 ms) with the slot MIGRATING/IMPORTING (a call whose keys are split answers TRYAGAIN, " +
    "one whose keys all moved ASK), then the rest and SETSLOT NODE (MOVED)",
  "slow-slot-move":
    "as slot-move, but the slot stays half moved for 3 s, longer than ioredis retries TRYAGAIN " +
    "(16 redirections 100 ms apart), as a migration of a big slot can",
  reshard:
    "`redis-cli --cluster reshard` moves the hit master's lowest `reshardSlots` slots, which hold every actor, " +
    "to another master",
  failover:
    "the hit master is killed (SIGKILL); its replica is promoted after cluster-node-timeout; then the old " +
    "master is started again, empty, and comes back as the new master's replica",
  "manual-failover":
    "CLUSTER FAILOVER on the hit master's replica: a planned switch, the old master stays up",
  "replica-restart": "the hit master's replica is killed and started again (`restartDownMs` down), empty",
};

/** How to run one trial. */
export interface FaultTrialOptions {
  /** The cluster to hit (healthy, 3 masters with a replica each). */
  cluster: TestCluster;
  fault: FaultName;
  /** The durability setting of both systems. @default { replicas: 0 } */
  durability?: Durability;
  /**
   * ioredis Cluster options for both systems (`createSystem({ cluster: { nodes, ...clientOptions } })`),
   * e.g. `{ maxRedirections: 64 }` or `{ slotsRefreshInterval: 1000 }`. @default {}
   */
  clientOptions?: ClusterOptions;
  /** Messages to send. @default 1000 */
  messages?: number;
  /** Actors, all with their slots on the hit master. @default 3 */
  actors?: number;
  /** Sending rate, messages per second. @default 400 */
  ratePerSec?: number;
  /** Sends in flight at most (retries included): the sender slows down when they pile up. @default 64 */
  window?: number;
  /** The fault starts once this fraction of the messages went out. @default 0.3 */
  faultAt?: number;
  /** Seeds which master is hit, the actors' names and which actor each message goes to. @default 1 */
  seed?: number;
  /** Lease of the consumer, ms: a message whose outcome was lost runs again after it. @default 3000 */
  leaseMs?: number;
  /** Pause between two attempts of a rejected send, ms. @default 100 */
  retryDelayMs?: number;
  /** A send attempt that has not settled after this long counts as hung and is repeated, ms. @default 15000 */
  attemptTimeoutMs?: number;
  /** A message still not acknowledged this long after its first attempt is given up, ms. @default 60000 */
  giveUpMs?: number;
  /** slot-move: how long the slot stays half moved, ms (slow-slot-move: 6 times as long). @default 500 */
  askWindowMs?: number;
  /** reshard: how many slots move. @default 16 */
  reshardSlots?: number;
  /** replica-restart: how long the replica stays down, ms. @default 500 */
  restartDownMs?: number;
  /**
   * After the stream: the trial ends once every acknowledged message ran and the actors'
   * inboxes and processing sets are empty, or once those stayed empty this long with messages
   * missing (lost), ms. @default 2000
   */
  quietMs?: number;
  /** How long to wait for the inboxes and processing sets to empty after the stream, ms. @default 30000 */
  settleTimeoutMs?: number;
  /** Progress lines (stderr in the bench). @default none */
  progress?: (line: string) => void;
}

/** What one trial measured. */
export interface FaultTrialResult {
  fault: FaultName;
  /** `none` or `replicas=1`. */
  setting: string;
  seed: number;
  messages: number;
  /** Sends that resolved. */
  acknowledged: number;
  /** Ids acknowledged whose message never started. */
  lost: string[];
  /** Ids whose handler started more than once, with how many times. */
  runTwice: Map<string, number>;
  /** Ids that started although no attempt to send them resolved (their send was given up or hung). */
  ranUnacknowledged: number;
  /** Ids given up by the sender (never acknowledged within `giveUpMs`). */
  givenUp: string[];
  /** Send attempts that rejected (or hung) and were repeated. */
  retriedSends: number;
  /** Why attempts failed: `<error name>: <message start>` → count. */
  sendErrors: Map<string, number>;
  /** The longest pause in handler starts from the fault's start to the end of the stream, ms. */
  recoverMs: number;
  /** How long the fault itself took (the harness call), ms. */
  faultMs: number;
  /** How long the whole trial took, ms. */
  trialMs: number;
  /** Warnings and errors the systems logged: `<level> <msg>` → count. */
  logged: Map<string, number>;
  /** Events that mean a system misbehaved (system.failed, actor restarts, a system stopping). */
  incidents: string[];
  /** Whether the actors' inboxes and processing sets emptied before `settleTimeoutMs`. */
  settled: boolean;
  /** The master the fault hit (after a failover: a replica again). */
  hitMaster: TestClusterNode;
}

/** A small seeded pseudo-random generator (mulberry32): the same seed, the same sequence. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A pino logger that counts warnings and errors by message instead of printing them. */
function countingLogger(counts: Map<string, number>): Logger {
  const stream = new Writable({
    write(chunk, _enc, done) {
      for (const line of String(chunk).split("\n")) {
        if (!line) continue;
        const parsed = JSON.parse(line) as { level: number; msg?: string; err?: { message?: string } };
        const cause = parsed.err?.message ? ` (${parsed.err.message.slice(0, 90)})` : "";
        const key = `${parsed.level >= 50 ? "error" : "warn"} ${parsed.msg ?? ""}${cause}`;
        counts.set(key, (counts.get(key) ?? 0) + 1);
      }
      done();
    },
  });
  return pino({ level: "warn" }, stream);
}

/** The slot ranges each master serves, by port, from CLUSTER SLOTS. */
async function slotRanges(cluster: TestCluster): Promise<Map<number, [number, number][]>> {
  const masters = await cluster.masters();
  const reply = (await (masters[0] as TestClusterNode).client().call("CLUSTER", "SLOTS")) as [
    number,
    number,
    [string, number, string],
  ][];
  const byPort = new Map<number, [number, number][]>();
  for (const [first, last, [, port]] of reply) {
    const ranges = byPort.get(Number(port)) ?? [];
    ranges.push([first, last]);
    byPort.set(Number(port), ranges);
  }
  for (const ranges of byPort.values()) ranges.sort((a, b) => a[0] - b[0]);
  return byPort;
}

/**
 * `count` actor ids, made from `prefix`, whose slots (`queue:{id}:inbox` and the rest of the app's
 * keys) are among `slots`; a different slot each while there are enough.
 */
function actorsInSlots(prefix: string, count: number, slots: ReadonlySet<number>): string[] {
  const ids: string[] = [];
  const used = new Set<number>();
  for (let i = 0; ids.length < count; i++) {
    if (i > 2_000_000) throw new Error(`found no actor id in the ${slots.size} slots asked for`);
    const id = `${prefix}-${i}`;
    const slot = calculateSlot(id);
    if (!slots.has(slot) || (used.has(slot) && used.size < slots.size)) continue;
    used.add(slot);
    ids.push(id);
  }
  return ids;
}

/** Where a trial hits: the master, its replica, another master, and which slots the actors may take. */
async function target(
  cluster: TestCluster,
  options: { fault: FaultName; random: () => number; reshardSlots: number },
): Promise<{
  master: TestClusterNode;
  replica: TestClusterNode;
  other: TestClusterNode;
  slots: Set<number>;
}> {
  const masters = [...(await cluster.masters())].sort((a, b) => a.port - b.port);
  const master = masters[Math.floor(options.random() * masters.length)] as TestClusterNode;
  const [replica] = await cluster.replicasOf(master);
  if (!replica) throw new Error(`master ${master.port} has no live replica`);
  const others = masters.filter((m) => m !== master);
  const other = others[Math.floor(options.random() * others.length)] as TestClusterNode;
  const ranges = (await slotRanges(cluster)).get(master.port) ?? [];
  const slots = new Set<number>();
  for (const [first, last] of ranges) for (let s = first; s <= last; s++) slots.add(s);
  if (options.fault === "reshard") {
    // redis-cli takes a source's lowest slots first: the actors live in those.
    const lowest = [...slots].sort((a, b) => a - b).slice(0, options.reshardSlots);
    return { master, replica, other, slots: new Set(lowest) };
  }
  return { master, replica, other, slots };
}

let trialCounter = 0;

/** Runs `fault` against `cluster` with messages flowing, and counts what was lost and run twice. */
export async function runFaultTrial(options: FaultTrialOptions): Promise<FaultTrialResult> {
  const {
    cluster,
    fault,
    messages = 1000,
    actors: actorCount = 3,
    ratePerSec = 400,
    window = 64,
    faultAt = 0.3,
    seed = 1,
    leaseMs = 3000,
    retryDelayMs = 100,
    attemptTimeoutMs = 15_000,
    giveUpMs = 60_000,
    askWindowMs = 500,
    reshardSlots = 16,
    restartDownMs = 500,
    quietMs = 2000,
    settleTimeoutMs = 30_000,
    progress = () => {},
  } = options;
  const durability: Durability = options.durability ?? { replicas: 0 };
  const setting = durability.replicas > 0 ? `replicas=${durability.replicas}` : "none";
  const trialStarted = Date.now();
  const random = seededRandom(seed);
  // Names unique to the trial (ids are what makes a repeated send a duplicate), the same in every run.
  trialCounter += 1;
  const run = `cf${trialCounter}-${fault}-${setting.replace("=", "")}-s${seed}`;
  const hit = await target(cluster, { fault, random, reshardSlots });
  const actors = actorsInSlots(`${run}-actor`, actorCount, hit.slots);
  const destination = Array.from(
    { length: messages },
    () => actors[Math.floor(random() * actors.length)] as string,
  );
  progress(
    `${fault} [${setting}] seed ${seed}: master ${hit.master.port} (replica ${hit.replica.port}), ` +
      `actors ${actors.map((a) => `${a}@${calculateSlot(a)}`).join(" ")}`,
  );

  const logged = new Map<string, number>();
  const incidents: string[] = [];
  const systemOptions = {
    cluster: { ...options.clientOptions, nodes: [...cluster.startupNodes] },
    durability,
    leaseMs,
    logger: countingLogger(logged),
  };
  const starts = new Map<string, number>();
  const startTimes: number[] = [];
  let consumer: ActorSystem | undefined;
  let sender: ActorSystem | undefined;
  const watch = (system: ActorSystem, name: string) => {
    system.events.on("system.failed", (e) => incidents.push(`${name} system.failed: ${e.error}`));
    system.events.on("actor.restarted", (e) =>
      incidents.push(`${name} actor.restarted ${e.actor}: ${e.reason}`),
    );
    system.events.on("supervisor.failed", (e) => incidents.push(`${name} supervisor.failed: ${e.error}`));
  };
  let stopping = false;
  try {
    consumer = await createSystem({ appId: `${run}-consumer`, ...systemOptions });
    watch(consumer, "consumer");
    void consumer.stopped.then(() => {
      if (!stopping) incidents.push("consumer stopped by itself");
    });
    for (const id of actors) {
      await consumer.spawn(
        defineActor<{ job: { payload: { seq: number } } }>({
          id,
          handlers: {
            job: (_payload, ctx) => {
              const n = (starts.get(ctx.message.id) ?? 0) + 1;
              starts.set(ctx.message.id, n);
              startTimes.push(Date.now());
            },
          },
        }),
      );
    }
    sender = await createSystem({ appId: `${run}-sender`, ...systemOptions });
    watch(sender, "sender");
    const from = sender;

    // The stream: message i goes out no earlier than i / rate s after the start, at most `window` in flight.
    const acknowledged = new Set<string>();
    const givenUp: string[] = [];
    const sendErrors = new Map<string, number>();
    let retriedSends = 0;
    let inFlight = 0;
    let wake: (() => void) | undefined;
    const idOf = (seq: number) => `${run}-m${seq}`;
    const sendOne = async (seq: number) => {
      const id = idOf(seq);
      const ref = from.ref<{ job: { payload: { seq: number } } }>(destination[seq] as string);
      const firstAt = Date.now();
      for (;;) {
        let timer: NodeJS.Timeout | undefined;
        try {
          await Promise.race([
            ref.tell("job", { seq }, { id }),
            new Promise((_, reject) => {
              timer = setTimeout(
                () => reject(new Error(`hung: not settled after ${attemptTimeoutMs} ms`)),
                attemptTimeoutMs,
              );
            }),
          ]);
          acknowledged.add(id);
          return;
        } catch (err) {
          const e = err as Error;
          const key = `${e.name}: ${e.message.slice(0, 70)}`;
          sendErrors.set(key, (sendErrors.get(key) ?? 0) + 1);
          if (Date.now() - firstAt > giveUpMs) {
            givenUp.push(id);
            return;
          }
          retriedSends += 1;
          await sleep(retryDelayMs);
        } finally {
          clearTimeout(timer);
        }
      }
    };
    const faultSeq = Math.floor(messages * faultAt);
    let faultStartedAt = 0;
    let faultMs = 0;
    let faultDone: Promise<void> = Promise.resolve();
    const streamStarted = Date.now();
    const sends: Promise<void>[] = [];
    for (let seq = 0; seq < messages; seq++) {
      const due = streamStarted + (seq * 1000) / ratePerSec;
      if (due > Date.now()) await sleep(due - Date.now());
      while (inFlight >= window) await new Promise<void>((r) => (wake = r));
      if (seq === faultSeq) {
        faultStartedAt = Date.now();
        progress(`${fault} [${setting}]: fault starts after ${seq} messages`);
        faultDone = inject(cluster, fault, hit, actors[0] as string, {
          askWindowMs,
          reshardSlots,
          restartDownMs,
        }).then(() => {
          faultMs = Date.now() - faultStartedAt;
          progress(`${fault} [${setting}]: fault over in ${faultMs} ms`);
        });
      }
      inFlight += 1;
      sends.push(
        sendOne(seq).finally(() => {
          inFlight -= 1;
          wake?.();
          wake = undefined;
        }),
      );
    }
    await faultDone;
    await Promise.all(sends);
    const streamEnded = Date.now();
    progress(
      `${fault} [${setting}]: ${acknowledged.size} of ${messages} acknowledged, ${retriedSends} retried sends; settling`,
    );

    // Settled: nothing waits in the actors' inboxes or leases, and every acknowledged message
    // ran, or nothing changed for `quietMs` (what is missing then is lost).
    const admin = cluster.client();
    const deadline = Date.now() + settleTimeoutMs;
    let settled = false;
    let emptySince: number | undefined;
    while (Date.now() < deadline) {
      const waiting = await Promise.all(
        actors.flatMap((a) => [admin.zcard(`queue:{${a}}:inbox`), admin.zcard(`queue:{${a}}:processing`)]),
      ).catch(() => [1]);
      if (waiting.every((n) => n === 0)) {
        emptySince ??= Date.now();
        if ([...acknowledged].every((id) => starts.has(id)) || Date.now() - emptySince >= quietMs) {
          settled = true;
          break;
        }
      } else {
        emptySince = undefined;
      }
      await sleep(100);
    }
    // A second run of a message whose lease the consumer lost would start about now: let it show.
    if (settled) await sleep(500);

    const faultStarts = startTimes
      .filter((t) => t >= faultStartedAt && t <= streamEnded)
      .sort((a, b) => a - b);
    let recoverMs = 0;
    let previous = faultStartedAt;
    for (const t of [...faultStarts, streamEnded]) {
      recoverMs = Math.max(recoverMs, t - previous);
      previous = t;
    }
    const runTwice = new Map([...starts].filter(([, n]) => n > 1));
    const result: FaultTrialResult = {
      fault,
      setting,
      seed,
      messages,
      acknowledged: acknowledged.size,
      lost: [...acknowledged].filter((id) => !starts.has(id)),
      runTwice,
      ranUnacknowledged: [...starts.keys()].filter((id) => !acknowledged.has(id)).length,
      givenUp,
      retriedSends,
      sendErrors,
      recoverMs,
      faultMs,
      trialMs: 0,
      logged,
      incidents,
      settled,
      hitMaster: hit.master,
    };
    // Leave the cluster as the next trial expects it: every node up, healthy.
    await cluster.waitHealthy();
    result.trialMs = Date.now() - trialStarted;
    return result;
  } finally {
    stopping = true;
    await sender?.shutdown();
    await consumer?.shutdown();
  }
}

/** Injects `fault` and resolves when the cluster is healthy again (every node up). */
async function inject(
  cluster: TestCluster,
  fault: FaultName,
  hit: { master: TestClusterNode; replica: TestClusterNode; other: TestClusterNode },
  busiest: string,
  options: { askWindowMs: number; reshardSlots: number; restartDownMs: number },
): Promise<void> {
  switch (fault) {
    case "slot-move":
    case "slow-slot-move": {
      const slot = await cluster.slotOf(`{${busiest}}`);
      const migration = await cluster.beginSlotMigration(slot, hit.other);
      const keys = (await hit.master.client().call("CLUSTER", "GETKEYSINSLOT", slot, 100_000)) as string[];
      await migration.moveKeys(keys.slice(0, Math.ceil(keys.length / 2)));
      await sleep(fault === "slow-slot-move" ? options.askWindowMs * 6 : options.askWindowMs);
      await migration.finish();
      return;
    }
    case "reshard":
      await cluster.reshard(hit.master, hit.other, options.reshardSlots);
      return;
    case "failover":
      await cluster.failover(hit.master);
      await cluster.restartNode(hit.master);
      return;
    case "manual-failover":
      await cluster.failover(hit.master, { manual: true });
      return;
    case "replica-restart":
      await cluster.restartNode(hit.replica, options.restartDownMs);
      return;
  }
}

/** One row per fault and setting, summed over its trials; the parameters and notes under it. */
export function renderFaultTable(results: readonly FaultTrialResult[], parameters: string): string {
  const groups = new Map<string, FaultTrialResult[]>();
  for (const r of results) {
    const key = `${r.fault}\u0000${r.setting}`;
    groups.set(key, [...(groups.get(key) ?? []), r]);
  }
  const header = [
    "fault",
    "setting",
    "trials",
    "sent acknowledged",
    "lost",
    "run twice",
    "retried sends",
    "not acknowledged",
    "time to recover (ms) median [min–max]",
  ];
  const lines = [`| ${header.join(" | ")} |`, `|${header.map(() => "---").join("|")}|`];
  const sum = (rs: FaultTrialResult[], f: (r: FaultTrialResult) => number) =>
    rs.reduce((n, r) => n + f(r), 0);
  for (const rs of groups.values()) {
    const first = rs[0] as FaultTrialResult;
    const recover = rs.map((r) => r.recoverMs).sort((a, b) => a - b);
    const median = recover[Math.floor((recover.length - 1) / 2)] as number;
    lines.push(
      `| ${[
        first.fault,
        first.setting,
        rs.length,
        `${sum(rs, (r) => r.acknowledged)} / ${sum(rs, (r) => r.messages)}`,
        sum(rs, (r) => r.lost.length),
        sum(rs, (r) => r.runTwice.size),
        sum(rs, (r) => r.retriedSends),
        sum(rs, (r) => r.givenUp.length),
        `${median} [${recover[0]}–${recover.at(-1)}]`,
      ].join(" | ")} |`,
    );
  }
  const notes = [
    "",
    parameters,
    "",
    "- sent acknowledged: sends that resolved / messages sent (each with its own id; a rejected send is repeated with the same id).",
    "- lost: acknowledged, and its handler never started. run twice: its handler started more than once.",
    "- retried sends: attempts that rejected (or did not settle) and were repeated.",
    "- not acknowledged: messages the sender gave up on (no attempt resolved within the give-up time).",
    "- time to recover: the longest pause in handler starts between the fault's start and the end of the stream.",
    ...FAULTS.filter((f) => results.some((r) => r.fault === f)).map(
      (f) => `- ${f}: ${FAULT_DESCRIPTIONS[f]}.`,
    ),
  ];
  const errors = new Map<string, number>();
  const logged = new Map<string, number>();
  const incidents: string[] = [];
  for (const r of results) {
    const at = `${r.fault} [${r.setting}]`;
    for (const [k, n] of r.sendErrors) errors.set(`${at} ${k}`, (errors.get(`${at} ${k}`) ?? 0) + n);
    for (const [k, n] of r.logged) logged.set(`${at} ${k}`, (logged.get(`${at} ${k}`) ?? 0) + n);
    for (const i of r.incidents) incidents.push(`${r.fault} [${r.setting}] seed ${r.seed}: ${i}`);
    if (!r.settled) incidents.push(`${r.fault} [${r.setting}] seed ${r.seed}: did not settle`);
  }
  const listing = (title: string, m: Map<string, number>) =>
    m.size === 0 ? [] : ["", `${title}:`, ...[...m].map(([k, n]) => `- ${n} × ${k}`)];
  return [
    ...lines,
    ...notes,
    ...listing("Why send attempts failed", errors),
    ...listing("What the systems logged (warn and error)", logged),
    ...(incidents.length === 0 ? [] : ["", "Incidents:", ...incidents.map((i) => `- ${i}`)]),
  ].join("\n");
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      trials: { type: "string", default: "3" },
      messages: { type: "string", default: "3000" },
      rate: { type: "string", default: "400" },
      actors: { type: "string", default: "4" },
      seed: { type: "string", default: "1" },
      faults: { type: "string", default: FAULTS.join(",") },
      settings: { type: "string", default: "none,replicas=1" },
      "node-timeout": { type: "string", default: "1000" },
      "lease-ms": { type: "string", default: "3000" },
      "client-options": { type: "string", default: "{}" },
    },
  });
  const trials = Number(values.trials);
  const messages = Number(values.messages);
  const ratePerSec = Number(values.rate);
  const actors = Number(values.actors);
  const seed = Number(values.seed);
  const nodeTimeoutMs = Number(values["node-timeout"]);
  const leaseMs = Number(values["lease-ms"]);
  const faults = values.faults.split(",").map((f) => f.trim()) as FaultName[];
  for (const f of faults)
    if (!FAULTS.includes(f)) throw new Error(`unknown fault "${f}" (${FAULTS.join(", ")})`);
  const clientOptions = JSON.parse(values["client-options"]) as ClusterOptions;
  const settings = values.settings.split(",").map((s) => s.trim());
  const durabilityOf = (s: string): Durability => {
    const m = /^replicas=(\d+)$/.exec(s);
    if (s === "none") return { replicas: 0 };
    if (m) return { replicas: Number(m[1]), timeoutMs: 1000 };
    throw new Error(`unknown setting "${s}" (none, replicas=<n>)`);
  };
  const unhandled: string[] = [];
  process.on("unhandledRejection", (reason) => unhandled.push(String(reason)));
  const log = (line: string) => process.stderr.write(`${line}\n`);

  const cluster = await startCluster({ nodeTimeoutMs });
  const redisVersion = /redis_version:(\S+)/.exec(
    await (cluster.nodes[0] as TestClusterNode).client().info("server"),
  )?.[1];
  const ioredisVersion = (createRequire(import.meta.url)("ioredis/package.json") as { version: string })
    .version;
  const parameters =
    `Parameters: ${trials} trial(s) per fault and setting, ${messages} messages per trial at ${ratePerSec} msg/s ` +
    `to ${actors} actors on the hit master, the fault after 30% of them, seeds ${seed}…${seed + trials - 1}; ` +
    `lease ${leaseMs} ms, durability timeout 1000 ms, a rejected send repeated after 100 ms; ` +
    `ioredis Cluster options ${JSON.stringify(clientOptions)} (ioredis ${ioredisVersion}); a cluster of 3 masters ` +
    `with 1 replica each (Redis ${redisVersion}), cluster-node-timeout ${nodeTimeoutMs} ms, no persistence; ` +
    `Node ${process.version}, ${availableParallelism()} CPUs; sender and consumer are two systems in one process. ` +
    `Command: npx tsx bench/cluster-faults.ts ${process.argv.slice(2).join(" ")}`.trim();
  log(parameters);
  const results: FaultTrialResult[] = [];
  try {
    for (const fault of faults) {
      for (const setting of settings) {
        for (let t = 0; t < trials; t++) {
          const result = await runFaultTrial({
            cluster,
            fault,
            durability: durabilityOf(setting),
            messages,
            actors,
            ratePerSec,
            seed: seed + t,
            leaseMs,
            clientOptions,
            progress: log,
          });
          log(
            `  → acknowledged ${result.acknowledged}, lost ${result.lost.length}, run twice ${result.runTwice.size}, ` +
              `retried ${result.retriedSends}, recover ${result.recoverMs} ms, trial ${result.trialMs} ms`,
          );
          results.push(result);
        }
      }
    }
  } finally {
    await cluster.stop();
  }
  process.stdout.write(`${renderFaultTable(results, parameters)}\n`);
  if (unhandled.length > 0)
    process.stdout.write(`\nUnhandled rejections:\n${unhandled.map((u) => `- ${u}`).join("\n")}\n`);
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  await main();
}
