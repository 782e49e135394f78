/**
 * A throw-away Redis Cluster made of real redis-server processes, with no test-runner dependency,
 * so that benchmarks and scripts can start one too. Each node listens on 127.0.0.1 in its own
 * temporary directory (its `nodes.conf` survives a restart there), with no persistence unless
 * asked. The cluster is created with `redis-cli --cluster create`, and every operation that
 * changes it (failover, restart, resharding, moving one slot) waits until every live node agrees
 * again: `cluster_state:ok`, one slot map covering all 16,384 slots, replicas linked.
 *
 * Source: the Redis Cluster tutorial and specification (https://redis.io/docs/management/scaling/,
 * https://redis.io/docs/reference/cluster-spec/): the cluster bus port is the client port +
 * 10000, failure detection takes `cluster-node-timeout` and then a replica election, and a slot
 * moves with CLUSTER SETSLOT IMPORTING / MIGRATING, MIGRATE and CLUSTER SETSLOT NODE.
 */
import { type ChildProcess, execFile, execFileSync, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Cluster, type ClusterOptions, Redis } from "ioredis";
import { waitForPing as waitForServerPing } from "./redis-server.js";

/** How to start a test cluster. */
export interface TestClusterOptions {
  /** Masters, each serving an equal share of the slots; `redis-cli` needs at least 3. @default 3 */
  masters?: number;
  /** Replicas of each master. @default 1 */
  replicasPerMaster?: number;
  /**
   * `cluster-node-timeout`, ms: how long a node may not answer before it is taken for failing.
   * A failover takes about this long plus a replica election (0.5 to 1 s).
   * @default 1000
   */
  nodeTimeoutMs?: number;
  /** Keep an append-only file on every node, so a restarted node keeps its data. @default false */
  appendOnly?: boolean;
  /** Extra `redis-server` arguments for every node, e.g. `["--notify-keyspace-events", "Kz"]`. @default [] */
  args?: string[];
}

/** A node's role, as the node itself reports it (ROLE). */
export type ClusterNodeRole = "master" | "replica";

/** One redis-server of a test cluster. */
export interface TestClusterNode {
  readonly host: string;
  readonly port: number;
  /** `redis://127.0.0.1:<port>` */
  readonly url: string;
  /** Its temporary directory, holding its `nodes.conf`. */
  readonly dir: string;
  /** Its cluster node id (CLUSTER MYID); kept across restarts. */
  readonly id: string;
  /** Whether its process is running. */
  readonly alive: boolean;
  /** Its role now, asked of the node (ROLE). Rejects when the node is down. */
  role(): Promise<ClusterNodeRole>;
  /** A new plain (non-cluster) connection to this node only; closed by the cluster's `stop()`. */
  client(): Redis;
  /** Kills the process (SIGKILL by default) and waits for it to exit. Does not wait for the cluster. */
  kill(signal?: NodeJS.Signals): Promise<void>;
  /**
   * Starts the process again on the same port and directory (killing it first if it runs),
   * staying down `downMs` in between. Waits for it to answer, not for the cluster to heal: see
   * `TestCluster.restartNode`. Without `appendOnly` it comes back empty.
   */
  restart(downMs?: number): Promise<void>;
  /** The last 4000 characters of its log. */
  output(): string;
}

/** A slot half-way through a move, for tests that want ASK redirections. */
export interface SlotMigration {
  readonly slot: number;
  readonly from: TestClusterNode;
  readonly to: TestClusterNode;
  /**
   * MIGRATEs `keys` (all of the slot's keys still on the source when omitted) to the target.
   * Until `finish`, a command for a moved key gets ASK from the source.
   */
  moveKeys(keys?: string[]): Promise<void>;
  /** Moves the remaining keys, assigns the slot to the target everywhere, waits for agreement. */
  finish(): Promise<void>;
}

/** A running test cluster. */
export interface TestCluster {
  /** Every node, in the order they were started; roles change, see `TestClusterNode.role()`. */
  readonly nodes: readonly TestClusterNode[];
  /** The `redis://` URL of every node, for a cluster client's startup nodes. */
  readonly startupNodes: string[];
  /** How long `startCluster` took, ms. */
  readonly startupMs: number;
  /** A new ioredis Cluster client on every node (`options` merged in); closed by `stop()`. */
  client(options?: ClusterOptions): Cluster;
  /** The live nodes that are masters now. */
  masters(): Promise<TestClusterNode[]>;
  /** The live nodes that replicate `master` now. */
  replicasOf(master: TestClusterNode): Promise<TestClusterNode[]>;
  /** The slot of `key` (CLUSTER KEYSLOT, hash tags applied). */
  slotOf(key: string): Promise<number>;
  /** The master that serves `key` now (CLUSTER KEYSLOT, then CLUSTER SLOTS). */
  masterOf(key: string): Promise<TestClusterNode>;
  /**
   * Makes a replica of `master` take over and waits until the cluster is healthy again; returns
   * how long that took, ms. By default kills `master` with SIGKILL (automatic failover: writes
   * not yet replicated are lost; use WAIT first); with `manual: true` it stays up and a replica
   * runs CLUSTER FAILOVER (no loss), and `master` becomes its replica.
   * Throws ClusterHarnessError when `master` is not a live master with a live replica, or on timeout.
   */
  failover(master: TestClusterNode, options?: { manual?: boolean; timeoutMs?: number }): Promise<number>;
  /** Restarts `node` (see `TestClusterNode.restart`) and waits until the cluster is healthy again. */
  restartNode(node: TestClusterNode, downMs?: number): Promise<void>;
  /**
   * Moves `slots` slots (with their keys) from master `from` to master `to` with
   * `redis-cli --cluster reshard`, and waits until every node agrees.
   */
  reshard(from: TestClusterNode, to: TestClusterNode, slots: number): Promise<void>;
  /** Moves one slot (with its keys) to master `to`, and waits until every node agrees. */
  migrateSlot(slot: number, to: TestClusterNode): Promise<void>;
  /** Starts moving one slot to master `to` and leaves it open (MIGRATING / IMPORTING). */
  beginSlotMigration(slot: number, to: TestClusterNode): Promise<SlotMigration>;
  /**
   * Resolves when every live node reports `cluster_state:ok`, knows every node, takes the dead
   * ones for failed and no live one, agrees on one slot map covering all 16,384 slots served by
   * live masters, and every live replica's link to its master is up.
   * Throws ClusterHarnessError after `timeoutMs` (default 20000) with what was still wrong.
   */
  waitHealthy(timeoutMs?: number): Promise<void>;
  /** Closes the clients, stops every node (SIGTERM, then SIGKILL after 3 s), removes the directories. */
  stop(): Promise<void>;
}

/** A test cluster could not be started or changed; `output` holds redis-cli's or the nodes' logs. */
export class ClusterHarnessError extends Error {
  override readonly name = "ClusterHarnessError";
  constructor(
    message: string,
    readonly output = "",
  ) {
    super(output ? `${message}\n${output}` : message);
  }
}

const HOST = "127.0.0.1";
const SLOTS = 16384;
const BUS_OFFSET = 10000;

let checkedBinaries = false;

function requireBinaries(): void {
  if (checkedBinaries) return;
  for (const bin of ["redis-server", "redis-cli"]) {
    try {
      execFileSync(bin, ["--version"], { stdio: "ignore" });
    } catch {
      throw new ClusterHarnessError(
        `${bin} is not installed or not on PATH; the cluster tests start their own servers. ` +
          "Install it with: sudo apt-get install -y redis-server redis-tools",
      );
    }
  }
  checkedBinaries = true;
}

// Every node process still running, killed if the test process exits without stop().
const running = new Set<ChildProcess>();
let exitHookInstalled = false;
function track(child: ChildProcess): void {
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.once("exit", () => {
      for (const c of running) c.kill("SIGKILL");
    });
  }
  running.add(child);
  child.once("exit", () => running.delete(child));
}

function portIsFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.unref();
    srv.once("error", () => resolve(false));
    srv.listen(port, HOST, () => srv.close(() => resolve(true)));
  });
}

/**
 * The highest client port whose bus port (port + 10000) stays below the kernel's ephemeral
 * range, so that no outgoing connection takes a port while its node is down for a restart.
 */
function highestPort(): number {
  try {
    const low = Number(readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8").trim().split(/\s+/)[0]);
    if (low - 1 - BUS_OFFSET >= 12_000) return low - 1 - BUS_OFFSET;
  } catch {
    // not Linux: fall through
  }
  return 65_535 - BUS_OFFSET;
}

const reserved = new Set<number>();

/** A client port that is free, whose bus port is free, and that no other node of this process uses. */
async function clusterPort(): Promise<number> {
  const low = 10_000;
  const high = highestPort();
  for (let attempt = 0; attempt < 200; attempt++) {
    const port = low + Math.floor(Math.random() * (high - low + 1));
    if ([port, port + BUS_OFFSET, port - BUS_OFFSET].some((p) => reserved.has(p))) continue;
    if ((await portIsFree(port)) && (await portIsFree(port + BUS_OFFSET))) {
      reserved.add(port);
      return port;
    }
  }
  throw new ClusterHarnessError("found no free pair of ports (port, port + 10000) for a cluster node");
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function redisCli(args: string[], timeoutMs = 60_000): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(
      "redis-cli",
      args,
      { timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024 },
      (err, stdout, stderr) => {
        const output = `${stdout}${stderr}`;
        // redis-cli --cluster exits 0 on some failures, printing [ERR].
        if (err || /\[ERR\]/.test(output)) {
          reject(
            new ClusterHarnessError(`redis-cli ${args.join(" ")} failed: ${err?.message ?? "[ERR]"}`, output),
          );
        } else {
          resolve(output);
        }
      },
    );
  });
}

/** One line of CLUSTER NODES. */
interface NodeEntry {
  id: string;
  port: number;
  flags: Set<string>;
  masterId: string | null;
  linkState: string;
  /** Slot ranges it owns, `[first, last]`. */
  slots: [number, number][];
}

function parseClusterNodes(text: string): NodeEntry[] {
  return text
    .trim()
    .split("\n")
    .filter(Boolean)
    .map((line) => {
      const [id, address, flags, master, , , , linkState, ...slots] = line.trim().split(" ");
      const port = Number(address?.split("@")[0]?.split(":").at(-1));
      return {
        id: id ?? "",
        port,
        flags: new Set((flags ?? "").split(",")),
        masterId: master === "-" || master === undefined ? null : master,
        linkState: linkState ?? "",
        slots: slots
          .filter((s) => !s.startsWith("[")) // [slot->-id] / [slot-<-id]: a move in progress
          .map((s) => {
            const [first, last] = s.split("-").map(Number);
            return [first ?? 0, last ?? first ?? 0] as [number, number];
          }),
      };
    });
}

function parseInfo(text: string): Map<string, string> {
  const fields = new Map<string, string>();
  for (const line of text.split("\r\n")) {
    const at = line.indexOf(":");
    if (at > 0) fields.set(line.slice(0, at), line.slice(at + 1));
  }
  return fields;
}

interface NodeInternals extends TestClusterNode {
  /** A connection for the harness's own commands (reopened after a restart). */
  admin(): Redis;
  launch(): Promise<void>;
  stop(): Promise<void>;
  closeClients(): void;
}

async function waitForPing(port: number, child: ChildProcess, log: () => string): Promise<void> {
  try {
    await waitForServerPing(port, child, log);
  } catch (err) {
    throw new ClusterHarnessError((err as Error).message, log());
  }
}

/** Starts a node on fresh ports, trying others when another process took them in the meantime. */
async function startNodeOnFreePorts(options: Required<TestClusterOptions>): Promise<NodeInternals> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await startNode(options);
    } catch (err) {
      const taken = err instanceof ClusterHarnessError && /address already in use/i.test(err.output);
      if (!taken || attempt === 3) throw err;
    }
  }
}

async function startNode(options: Required<TestClusterOptions>): Promise<NodeInternals> {
  const port = await clusterPort();
  const dir = mkdtempSync(join(tmpdir(), "redactor-cluster-"));
  const args = [
    "--port",
    String(port),
    "--bind",
    HOST,
    "--dir",
    dir,
    "--cluster-enabled",
    "yes",
    "--cluster-config-file",
    "nodes.conf",
    "--cluster-node-timeout",
    String(options.nodeTimeoutMs),
    // A replica may always take over, however long its link was down (restarts in tests).
    "--cluster-replica-validity-factor",
    "0",
    // Replicas sync at once (the default waits 5 s for more replicas to share one transfer).
    "--repl-diskless-sync-delay",
    "0",
    "--save",
    "",
    "--appendonly",
    options.appendOnly ? "yes" : "no",
    ...(options.appendOnly ? ["--appendfsync", "always"] : []),
    ...options.args,
  ];
  const clients: Redis[] = [];
  let admin: Redis | undefined;
  let child: ChildProcess | undefined;
  let output = "";
  let id = "";

  const closeAdmin = () => {
    admin?.disconnect();
    admin = undefined;
  };
  const kill = async (signal: NodeJS.Signals = "SIGKILL") => {
    closeAdmin();
    const c = child;
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    const exited = new Promise((r) => c.once("exit", r));
    c.kill(signal);
    await exited;
  };
  const launch = async () => {
    output = "";
    const c = spawn("redis-server", args, { stdio: ["ignore", "pipe", "pipe"] });
    child = c;
    track(c);
    const keep = (d: Buffer) => {
      output = (output + d).slice(-4000);
    };
    c.stdout?.on("data", keep);
    c.stderr?.on("data", keep);
    await waitForPing(port, c, () => output);
  };

  try {
    await launch();
  } catch (err) {
    await kill();
    reserved.delete(port);
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  const node: NodeInternals = {
    host: HOST,
    port,
    url: `redis://${HOST}:${port}`,
    dir,
    get id() {
      return id;
    },
    get alive() {
      return child !== undefined && child.exitCode === null && child.signalCode === null;
    },
    admin() {
      if (!admin || admin.status === "end") {
        admin = new Redis({ host: HOST, port, retryStrategy: () => null, maxRetriesPerRequest: 0 });
        admin.on("error", () => {});
      }
      return admin;
    },
    async role() {
      const reply = (await node.admin().call("ROLE")) as [string, ...unknown[]];
      return reply[0] === "master" ? "master" : "replica";
    },
    client() {
      const c = new Redis({ host: HOST, port, maxRetriesPerRequest: null });
      c.on("error", () => {});
      clients.push(c);
      return c;
    },
    kill,
    async restart(downMs = 0) {
      await kill();
      await sleep(downMs);
      await launch();
    },
    output: () => output,
    launch,
    closeClients() {
      for (const c of clients.splice(0)) c.disconnect();
      closeAdmin();
    },
    async stop() {
      node.closeClients();
      const c = child;
      if (c && c.exitCode === null && c.signalCode === null) {
        const exited = new Promise((r) => c.once("exit", r));
        c.kill("SIGTERM");
        const forced = setTimeout(() => c.kill("SIGKILL"), 3000);
        await exited;
        clearTimeout(forced);
      }
      reserved.delete(port);
      rmSync(dir, { recursive: true, force: true });
    },
  };
  id = String(await node.admin().call("CLUSTER", "MYID"));
  return node;
}

/** What one live node sees, for the health check. */
interface View {
  node: NodeInternals;
  info: Map<string, string>;
  entries: NodeEntry[];
  /** ROLE's link state for a replica ("connected" when up), null for a master. */
  replicaLink: string | null;
}

async function readView(node: NodeInternals): Promise<View> {
  const admin = node.admin();
  const [info, nodesText, role] = await Promise.all([
    admin.call("CLUSTER", "INFO") as Promise<string>,
    admin.call("CLUSTER", "NODES") as Promise<string>,
    admin.call("ROLE") as Promise<unknown[]>,
  ]);
  return {
    node,
    info: parseInfo(info),
    entries: parseClusterNodes(nodesText),
    replicaLink: role[0] === "master" ? null : String(role[3]),
  };
}

function slotMapOf(view: View): string {
  const ranges: string[] = [];
  for (const e of view.entries) {
    if (!e.flags.has("master")) continue;
    for (const [first, last] of e.slots) ranges.push(`${String(first).padStart(5, "0")}-${last}:${e.id}`);
  }
  return ranges.sort().join(" ");
}

/** What is wrong with the cluster now, or null when it is healthy. */
async function problems(
  nodes: readonly NodeInternals[],
  expected?: { masters: number; replicasPerMaster: number },
): Promise<string | null> {
  const live = nodes.filter((n) => n.alive);
  const liveIds = new Set(live.map((n) => n.id));
  const views: View[] = [];
  for (const node of live) {
    try {
      views.push(await readView(node));
    } catch (err) {
      return `node ${node.port} does not answer: ${(err as Error).message}`;
    }
  }
  let slotMap: string | undefined;
  for (const view of views) {
    const at = `node ${view.node.port}`;
    if (view.info.get("cluster_state") !== "ok")
      return `${at}: cluster_state:${view.info.get("cluster_state")}`;
    if (view.info.get("cluster_slots_ok") !== String(SLOTS))
      return `${at}: cluster_slots_ok:${view.info.get("cluster_slots_ok")}`;
    if (view.entries.length !== nodes.length)
      return `${at} knows ${view.entries.length} of ${nodes.length} nodes`;
    for (const e of view.entries) {
      if (liveIds.has(e.id)) {
        const bad = ["fail", "fail?", "handshake", "noaddr"].filter((f) => e.flags.has(f));
        if (bad.length > 0) return `${at} flags live node ${e.port} ${bad.join(",")}`;
        if (!e.flags.has("myself") && e.linkState !== "connected")
          return `${at}: link to ${e.port} ${e.linkState}`;
      } else if (!e.flags.has("fail")) {
        return `${at} does not yet flag dead node ${e.port} as failed`;
      }
    }
    const owners = new Set<string>();
    let covered = 0;
    for (const e of view.entries) {
      if (!e.flags.has("master")) continue;
      for (const [first, last] of e.slots) {
        covered += last - first + 1;
        owners.add(e.id);
      }
    }
    if (covered !== SLOTS) return `${at} sees ${covered} of ${SLOTS} slots assigned`;
    for (const owner of owners) if (!liveIds.has(owner)) return `${at} has slots on dead node ${owner}`;
    const map = slotMapOf(view);
    if (slotMap === undefined) slotMap = map;
    else if (map !== slotMap) return `${at} disagrees on the slot map`;
    if (view.replicaLink !== null && view.replicaLink !== "connected")
      return `${at}: replica link ${view.replicaLink}`;
  }
  // Every view agrees on who replicates whom among live nodes.
  const mastersOf = (view: View) =>
    view.entries
      .filter((e) => liveIds.has(e.id))
      .map((e) => `${e.id}:${e.flags.has("master") ? "m" : e.masterId}`)
      .sort()
      .join(" ");
  const first = views[0];
  if (first) {
    const roles = mastersOf(first);
    for (const view of views)
      if (mastersOf(view) !== roles) return `node ${view.node.port} disagrees on roles`;
    if (expected) {
      const masters = first.entries.filter((e) => e.flags.has("master"));
      if (masters.length !== expected.masters)
        return `${masters.length} masters, expected ${expected.masters}`;
      for (const m of masters) {
        const replicas = first.entries.filter((e) => e.masterId === m.id).length;
        if (replicas !== expected.replicasPerMaster)
          return `master ${m.port} has ${replicas} replicas, expected ${expected.replicasPerMaster}`;
      }
    }
  }
  return null;
}

function logs(nodes: readonly NodeInternals[]): string {
  return nodes.map((n) => `--- node ${n.port} (${n.alive ? "up" : "down"}) ---\n${n.output()}`).join("\n");
}

/**
 * Starts a throw-away Redis Cluster: `masters × (1 + replicasPerMaster)` redis-server processes,
 * joined by `redis-cli --cluster create`, and resolves once it is healthy (see
 * `TestCluster.waitHealthy`). Takes about 2 s for 6 nodes.
 * Throws ClusterHarnessError (with redis-cli's output or the nodes' logs) when it cannot.
 */
export async function startCluster(options: TestClusterOptions = {}): Promise<TestCluster> {
  requireBinaries();
  const started = Date.now();
  const opts: Required<TestClusterOptions> = {
    masters: options.masters ?? 3,
    replicasPerMaster: options.replicasPerMaster ?? 1,
    nodeTimeoutMs: options.nodeTimeoutMs ?? 1000,
    appendOnly: options.appendOnly ?? false,
    args: options.args ?? [],
  };
  if (!Number.isInteger(opts.masters) || opts.masters < 3)
    throw new ClusterHarnessError(
      `masters must be an integer of at least 3 (redis-cli's minimum), got ${opts.masters}`,
    );
  if (!Number.isInteger(opts.replicasPerMaster) || opts.replicasPerMaster < 0)
    throw new ClusterHarnessError(
      `replicasPerMaster must be a non-negative integer, got ${opts.replicasPerMaster}`,
    );

  const count = opts.masters * (1 + opts.replicasPerMaster);
  const settled = await Promise.allSettled(Array.from({ length: count }, () => startNodeOnFreePorts(opts)));
  const nodes = settled.flatMap((s) => (s.status === "fulfilled" ? [s.value] : []));
  const failed = settled.find((s): s is PromiseRejectedResult => s.status === "rejected");
  if (failed) {
    await Promise.all(nodes.map((n) => n.stop()));
    throw failed.reason;
  }

  const clusterClients: Cluster[] = [];
  let startupMs = 0;
  const byId = (id: string) => {
    const node = nodes.find((n) => n.id === id);
    if (!node) throw new ClusterHarnessError(`no node of this cluster has id ${id}`);
    return node;
  };
  const internal = (node: TestClusterNode): NodeInternals => {
    const found = nodes.find((n) => n === node || n.id === node.id);
    if (!found) throw new ClusterHarnessError(`node ${node.port} is not part of this cluster`);
    return found;
  };
  const anyLive = (): NodeInternals => {
    const node = nodes.find((n) => n.alive);
    if (!node) throw new ClusterHarnessError("every node of the cluster is down");
    return node;
  };
  const entriesFrom = async (node: NodeInternals) =>
    parseClusterNodes((await node.admin().call("CLUSTER", "NODES")) as string);

  const waitHealthy = async (
    timeoutMs = 20_000,
    expected?: { masters: number; replicasPerMaster: number },
  ) => {
    const deadline = Date.now() + timeoutMs;
    let last: string | null = "not checked";
    while (Date.now() < deadline) {
      last = await problems(nodes, expected);
      if (last === null) return;
      await sleep(25);
    }
    throw new ClusterHarnessError(`the cluster was not healthy within ${timeoutMs} ms: ${last}`, logs(nodes));
  };

  const requireLiveMaster = async (node: NodeInternals, what: string) => {
    if (!node.alive) throw new ClusterHarnessError(`${what}: node ${node.port} is down`);
    if ((await node.role()) !== "master")
      throw new ClusterHarnessError(`${what}: node ${node.port} is not a master`);
  };

  const ownerOfSlot = async (slot: number): Promise<NodeInternals> => {
    for (const e of await entriesFrom(anyLive())) {
      if (e.flags.has("master") && e.slots.some(([first, last]) => slot >= first && slot <= last))
        return byId(e.id);
    }
    throw new ClusterHarnessError(`no master serves slot ${slot}`);
  };

  const cluster: TestCluster = {
    nodes,
    startupNodes: nodes.map((n) => n.url),
    get startupMs() {
      return startupMs;
    },
    client(clientOptions: ClusterOptions = {}) {
      const c = new Cluster(
        nodes.map((n) => ({ host: n.host, port: n.port })),
        { ...clientOptions, redisOptions: { maxRetriesPerRequest: null, ...clientOptions.redisOptions } },
      );
      c.on("error", () => {});
      clusterClients.push(c);
      return c;
    },
    async masters() {
      const live = nodes.filter((n) => n.alive);
      const roles = await Promise.all(live.map((n) => n.role()));
      return live.filter((_, i) => roles[i] === "master");
    },
    async replicasOf(master) {
      const m = internal(master);
      const entries = await entriesFrom(anyLive());
      return entries
        .filter((e) => e.masterId === m.id && !e.flags.has("fail"))
        .map((e) => byId(e.id))
        .filter((n) => n.alive);
    },
    async slotOf(key) {
      return Number(await anyLive().admin().call("CLUSTER", "KEYSLOT", key));
    },
    async masterOf(key) {
      const slot = await cluster.slotOf(key);
      const ranges = (await anyLive().admin().call("CLUSTER", "SLOTS")) as [
        number,
        number,
        [string, number, string],
      ][];
      for (const [first, last, [, port]] of ranges) {
        if (slot >= first && slot <= last) {
          const node = nodes.find((n) => n.port === Number(port));
          if (node) return node;
        }
      }
      throw new ClusterHarnessError(`no master serves slot ${slot} (key ${key})`);
    },
    async failover(master, failoverOptions = {}) {
      const m = internal(master);
      await requireLiveMaster(m, "failover");
      const replicas = await cluster.replicasOf(m);
      if (replicas.length === 0)
        throw new ClusterHarnessError(`failover: master ${m.port} has no live replica`);
      const timeoutMs = failoverOptions.timeoutMs ?? 20_000;
      const begun = Date.now();
      if (failoverOptions.manual) {
        const replica = internal(replicas[0] as TestClusterNode);
        await replica.admin().call("CLUSTER", "FAILOVER");
      } else {
        await m.kill("SIGKILL");
      }
      const deadline = begun + timeoutMs;
      for (;;) {
        const roles = await Promise.all(replicas.map((r) => r.role().catch(() => "down")));
        if (roles.includes("master")) break;
        if (Date.now() > deadline)
          throw new ClusterHarnessError(
            `failover: no replica of ${m.port} was promoted within ${timeoutMs} ms`,
            logs(nodes),
          );
        await sleep(20);
      }
      await waitHealthy(Math.max(1000, deadline - Date.now()));
      return Date.now() - begun;
    },
    async restartNode(node, downMs = 0) {
      await internal(node).restart(downMs);
      await waitHealthy();
    },
    async reshard(from, to, slots) {
      const f = internal(from);
      const t = internal(to);
      await requireLiveMaster(f, "reshard");
      await requireLiveMaster(t, "reshard");
      if (!Number.isInteger(slots) || slots < 1)
        throw new ClusterHarnessError(`reshard: slots must be a positive integer, got ${slots}`);
      await redisCli([
        "--cluster",
        "reshard",
        `${f.host}:${f.port}`,
        "--cluster-from",
        f.id,
        "--cluster-to",
        t.id,
        "--cluster-slots",
        String(slots),
        "--cluster-yes",
      ]);
      await waitHealthy();
    },
    async beginSlotMigration(slot, to) {
      if (!Number.isInteger(slot) || slot < 0 || slot >= SLOTS)
        throw new ClusterHarnessError(`slot must be an integer in 0 … ${SLOTS - 1}, got ${slot}`);
      const target = internal(to);
      await requireLiveMaster(target, "migrateSlot");
      const source = await ownerOfSlot(slot);
      if (source === target)
        throw new ClusterHarnessError(`migrateSlot: slot ${slot} is already on node ${target.port}`);
      await target.admin().call("CLUSTER", "SETSLOT", slot, "IMPORTING", source.id);
      await source.admin().call("CLUSTER", "SETSLOT", slot, "MIGRATING", target.id);
      const migrate = async (keys: string[]) => {
        if (keys.length === 0) return;
        await source.admin().call("MIGRATE", target.host, target.port, "", 0, 5000, "KEYS", ...keys);
      };
      const moveKeys = async (keys?: string[]) => {
        if (keys) return migrate(keys);
        for (;;) {
          const batch = (await source.admin().call("CLUSTER", "GETKEYSINSLOT", slot, 1000)) as string[];
          if (batch.length === 0) return;
          await migrate(batch);
        }
      };
      return {
        slot,
        from: source,
        to: target,
        moveKeys,
        async finish() {
          await moveKeys();
          // The target first, so the slot is never owned by nobody; then the source, then the others.
          await target.admin().call("CLUSTER", "SETSLOT", slot, "NODE", target.id);
          await source.admin().call("CLUSTER", "SETSLOT", slot, "NODE", target.id);
          const others = (await cluster.masters()).filter((n) => n !== target && n !== source);
          await Promise.all(
            others.map((n) => internal(n).admin().call("CLUSTER", "SETSLOT", slot, "NODE", target.id)),
          );
          await waitHealthy();
        },
      };
    },
    async migrateSlot(slot, to) {
      await (await cluster.beginSlotMigration(slot, to)).finish();
    },
    waitHealthy: (timeoutMs?: number) => waitHealthy(timeoutMs),
    async stop() {
      for (const c of clusterClients.splice(0)) c.disconnect();
      await Promise.all(nodes.map((n) => n.stop()));
    },
  };

  try {
    await redisCli([
      "--cluster",
      "create",
      ...nodes.map((n) => `${n.host}:${n.port}`),
      "--cluster-replicas",
      String(opts.replicasPerMaster),
      "--cluster-yes",
    ]);
    await waitHealthy(20_000, { masters: opts.masters, replicasPerMaster: opts.replicasPerMaster });
  } catch (err) {
    await cluster.stop();
    throw err;
  }
  startupMs = Date.now() - started;
  return cluster;
}
