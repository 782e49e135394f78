/**
 * Fault injection for tests that run real processes against a real redis-server: freezing a
 * process (SIGSTOP, then SIGCONT), killing it, restarting Redis (its append-only file keeps
 * the data), killing clients' connections, pausing every client, and memory pressure
 * (`maxmemory` near the memory in use, with `noeviction`). Every fault is written to a
 * timeline of windows, in this process's clock, so a test can tell afterwards which faults
 * were active when something happened. Faults with a duration end by themselves; `restore()`
 * ends every one still active.
 */
import type { ChildProcess } from "node:child_process";
import type { Redis } from "ioredis";
import type { TestRedis } from "./redis-server.js";

/** What kind of fault a window stands for. */
export type FaultKind =
  | "freeze" // a process stopped with SIGSTOP
  | "kill" // a process killed (instant: start = end)
  | "redis-down" // redis-server killed and started again
  | "client-kill" // connections killed (instant; the clients' own records say how long they were down)
  | "pause" // CLIENT PAUSE
  | "memory"; // maxmemory below or near the memory in use, noeviction

/** One fault, from `start` to `end` (ms, Date.now() of this process). */
export interface FaultWindow {
  kind: FaultKind;
  start: number;
  /** Infinity while still active. */
  end: number;
  /** The process concerned (freeze, kill). */
  pid?: number;
  /** The client names concerned (client-kill): connection names start with one of them. */
  names?: string[];
  /** What exactly was done, for reports. */
  detail: string;
}

/** Redis' error counters (`INFO errorstats`), by error prefix (ERR, OOM, NOSCRIPT …). */
export type ErrorStats = Record<string, number>;

/** Parses `INFO errorstats`. */
export function parseErrorStats(info: string): ErrorStats {
  const stats: ErrorStats = {};
  for (const line of info.split(/\r?\n/)) {
    const match = /^errorstat_([^:]+):count=(\d+)/.exec(line);
    if (match?.[1]) stats[match[1]] = Number(match[2]);
  }
  return stats;
}

/** One connection of `CLIENT LIST`. */
export interface ClientInfo {
  id: string;
  name: string;
  /** Subscribed to channels (a pub/sub connection). */
  pubsub: boolean;
}

/** Parses `CLIENT LIST`. */
export function parseClientList(text: string): ClientInfo[] {
  return text
    .split(/\r?\n/)
    .filter((line) => line.trim() !== "")
    .map((line) => {
      const fields = new Map(
        line.split(" ").map((pair) => {
          const at = pair.indexOf("=");
          return [pair.slice(0, at), pair.slice(at + 1)] as const;
        }),
      );
      const subs = Number(fields.get("sub") ?? 0) + Number(fields.get("psub") ?? 0);
      return {
        id: fields.get("id") ?? "",
        name: fields.get("name") ?? "",
        pubsub: subs > 0 || (fields.get("flags") ?? "").includes("P"),
      };
    });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Injects faults into one redis-server and the processes using it, and records them. */
export class Faults {
  /** Every fault injected, in order of start. */
  readonly timeline: FaultWindow[] = [];
  /** Error counters of servers that were since restarted (a restart resets them). */
  private readonly pastErrors: ErrorStats = {};
  private pastConnections = 0;
  private readonly frozen = new Map<
    number,
    { window: FaultWindow; timer: NodeJS.Timeout; child: ChildProcess }
  >();
  private memory: { window: FaultWindow; timer: NodeJS.Timeout } | undefined;
  private readonly pauses: FaultWindow[] = [];
  private readonly pending = new Set<Promise<unknown>>();

  /**
   * @param redis the server to fault
   * @param admin a connection of the test's own to it: never faulted by `killClients`, but
   *   paused with everyone else by `pause`
   */
  constructor(
    private readonly redis: TestRedis,
    private readonly admin: Redis,
  ) {}

  private open(window: Omit<FaultWindow, "end"> & { end?: number }): FaultWindow {
    const entry: FaultWindow = { end: Number.POSITIVE_INFINITY, ...window };
    this.timeline.push(entry);
    return entry;
  }

  private track<T>(promise: Promise<T>): Promise<T> {
    this.pending.add(promise);
    void promise.finally(() => this.pending.delete(promise)).catch(() => {});
    return promise;
  }

  /** True while `child` is alive (neither exited nor killed by a signal). */
  static alive(child: ChildProcess): boolean {
    return child.exitCode === null && child.signalCode === null;
  }

  /**
   * Stops `child` with SIGSTOP for `ms`, then continues it with SIGCONT (without waiting). A
   * process already frozen stays frozen until the later of both ends.
   */
  freeze(child: ChildProcess, ms: number): void {
    const pid = child.pid;
    if (pid === undefined || !Faults.alive(child)) return;
    const current = this.frozen.get(pid);
    const until = Date.now() + ms;
    if (current) {
      clearTimeout(current.timer);
      current.window.detail = `SIGSTOP pid ${pid} until +${ms} ms (extended)`;
      current.timer = setTimeout(() => this.thaw(pid), Math.max(0, until - Date.now()));
      return;
    }
    child.kill("SIGSTOP");
    const window = this.open({
      kind: "freeze",
      start: Date.now(),
      pid,
      detail: `SIGSTOP pid ${pid} for ${ms} ms`,
    });
    this.frozen.set(pid, { window, child, timer: setTimeout(() => this.thaw(pid), ms) });
  }

  /** Continues a frozen process now. */
  thaw(pid: number): void {
    const entry = this.frozen.get(pid);
    if (!entry) return;
    clearTimeout(entry.timer);
    this.frozen.delete(pid);
    if (Faults.alive(entry.child)) entry.child.kill("SIGCONT");
    entry.window.end = Date.now();
  }

  /** True while `pid` is frozen by this object. */
  isFrozen(pid: number): boolean {
    return this.frozen.has(pid);
  }

  /** Kills `child` with `signal` (SIGKILL by default) and waits until it has exited. */
  async kill(child: ChildProcess, signal: NodeJS.Signals = "SIGKILL"): Promise<void> {
    if (!Faults.alive(child) || child.pid === undefined) return;
    const exited = new Promise((r) => child.once("exit", r));
    const start = Date.now();
    child.kill(signal);
    if (this.frozen.has(child.pid)) {
      // A stopped process gets SIGKILL at once, but SIGTERM only once it runs again.
      if (signal !== "SIGKILL") child.kill("SIGCONT");
      this.thaw(child.pid);
    }
    this.open({ kind: "kill", start, end: start, pid: child.pid, detail: `${signal} pid ${child.pid}` });
    await exited;
  }

  /** Kills redis-server (SIGKILL), keeps it down `downMs`, starts it again with its AOF. */
  async restartRedis(downMs: number): Promise<void> {
    await this.collectErrors();
    const window = this.open({ kind: "redis-down", start: Date.now(), detail: `restart, down ${downMs} ms` });
    try {
      await this.redis.restart(downMs);
    } finally {
      window.end = Date.now();
    }
    // A restarted server forgets a limit set with CONFIG SET: the pressure ends here.
    if (this.memory) this.memory.window.detail += " (ended by the restart)";
    this.endMemory();
  }

  /**
   * Kills the connections whose name starts with one of `names` (redactor names its
   * connections `redactor:<appId>`): `normal` ones (commands), `pubsub` ones (subscribers) or
   * both. Returns how many were killed.
   */
  async killClients(names: string[], type: "normal" | "pubsub" | "both"): Promise<number> {
    const clients = parseClientList(String(await this.admin.client("LIST")));
    const targets = clients.filter(
      (c) =>
        names.some((n) => c.name === n || c.name.startsWith(`${n}:`)) &&
        (type === "both" || (type === "pubsub") === c.pubsub),
    );
    const start = Date.now();
    let killed = 0;
    for (const c of targets) killed += Number(await this.admin.client("KILL", "ID", c.id));
    this.open({
      kind: "client-kill",
      start,
      end: start,
      names,
      detail: `CLIENT KILL ${type} of ${names.join(", ")}: ${killed}`,
    });
    return killed;
  }

  /** CLIENT PAUSE for `ms` (`ALL` commands, or `WRITE` ones only); returns at once. */
  async pause(ms: number, mode: "ALL" | "WRITE"): Promise<void> {
    const start = Date.now();
    await this.admin.call("CLIENT", "PAUSE", String(ms), mode);
    const window = this.open({ kind: "pause", start, end: start + ms, detail: `CLIENT PAUSE ${ms} ${mode}` });
    this.pauses.push(window);
  }

  /**
   * Memory pressure for `ms`: `maxmemory` just below the memory in use (`over`: every write
   * that may grow memory is refused) or a little above it (`near`: writes succeed until the
   * limit), with the `noeviction` policy; then `maxmemory 0` again. Returns at once.
   */
  async memoryPressure(ms: number, level: "over" | "near"): Promise<void> {
    const info = String(await this.admin.info("memory"));
    const used = Number(/used_memory:(\d+)/.exec(info)?.[1] ?? 0);
    const limit = level === "over" ? Math.max(1, used - 64 * 1024) : used + 256 * 1024;
    await this.admin.config("SET", "maxmemory-policy", "noeviction");
    await this.admin.config("SET", "maxmemory", String(limit));
    if (this.memory) {
      clearTimeout(this.memory.timer);
      this.memory.timer = setTimeout(() => void this.track(this.memoryOff()), ms);
      this.memory.window.detail += `; ${level} again for ${ms} ms`;
      return;
    }
    const window = this.open({
      kind: "memory",
      start: Date.now(),
      detail: `maxmemory ${limit} (${level}; used ${used}) for ${ms} ms`,
    });
    this.memory = { window, timer: setTimeout(() => void this.track(this.memoryOff()), ms) };
  }

  /** Ends memory pressure now. */
  async memoryOff(): Promise<void> {
    if (!this.memory) return;
    clearTimeout(this.memory.timer);
    await this.admin.config("SET", "maxmemory", "0");
    this.endMemory();
  }

  private endMemory(): void {
    if (!this.memory) return;
    clearTimeout(this.memory.timer);
    this.memory.window.end = Date.now();
    this.memory = undefined;
  }

  /** Ends every fault still active: continues frozen processes, waits out pauses, lifts memory limits. */
  async restore(): Promise<void> {
    for (const pid of [...this.frozen.keys()]) this.thaw(pid);
    const pausedUntil = Math.max(0, ...this.pauses.map((p) => p.end));
    if (pausedUntil > Date.now()) await sleep(pausedUntil - Date.now() + 10);
    await this.memoryOff();
    await Promise.allSettled([...this.pending]);
    await this.memoryOff();
  }

  /**
   * Redis' error counters and the number of connections it accepted, since the server was
   * first started (restarts included). ioredis sends `CLIENT SETINFO` twice on each connection,
   * which Redis before 7.2 answers with ERR: up to two ERR per connection are its own.
   */
  async serverCounters(): Promise<{ errors: ErrorStats; connections: number }> {
    const now = await this.readCounters();
    const errors: ErrorStats = { ...this.pastErrors };
    for (const [k, v] of Object.entries(now.errors)) errors[k] = (errors[k] ?? 0) + v;
    return { errors, connections: this.pastConnections + now.connections };
  }

  private async readCounters(): Promise<{ errors: ErrorStats; connections: number }> {
    const errors = parseErrorStats(String(await this.admin.info("errorstats")));
    const stats = String(await this.admin.info("stats"));
    return { errors, connections: Number(/total_connections_received:(\d+)/.exec(stats)?.[1] ?? 0) };
  }

  private async collectErrors(): Promise<void> {
    try {
      const now = await this.readCounters();
      for (const [k, v] of Object.entries(now.errors)) this.pastErrors[k] = (this.pastErrors[k] ?? 0) + v;
      this.pastConnections += now.connections;
    } catch {
      // The server is already unreachable: its counters are lost with it.
    }
  }

  /** Windows of `kinds` that overlap [from, to]. */
  overlapping(from: number, to: number, kinds?: FaultKind[]): FaultWindow[] {
    return this.timeline.filter((w) => (!kinds || kinds.includes(w.kind)) && w.start <= to && w.end >= from);
  }
}
