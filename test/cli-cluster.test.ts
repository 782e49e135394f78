/**
 * The `redactor` CLI on a Redis Cluster: run as a child process (its source, through tsx, which
 * is much quicker than building it) with `--cluster`, against a throw-away 3-master cluster and
 * a live system on it whose apps' keys sit on different masters.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { main } from "../src/cli/main.js";
import { type ActorSystem, createSystem, defineActor } from "../src/index.js";
import { uniqueId } from "./harness/redis.js";
import { startCluster, type TestCluster } from "./harness/redis-cluster.js";
import { type ProcessResult, runProcess, waitFor } from "./harness/system.js";

/** The CLI's command line before its own arguments. */
const cliArgv = ["--import", "tsx", fileURLToPath(new URL("../src/cli/main.ts", import.meta.url))];
/** Where the `run` test writes its module. */
const workDir = mkdtempSync(join(tmpdir(), "redactor-cli-cluster-"));

let cluster: TestCluster;
let system: ActorSystem;
/** The `--cluster` value: every node, comma-separated. */
let nodes: string;

/** The environment of a CLI process: no Redis settings but those a test gives. */
function cliEnv(env: Record<string, string>): NodeJS.ProcessEnv {
  const { REDIS_URL: _url, REDIS_CLUSTER: _cluster, ...rest } = process.env;
  return { ...rest, REDACTOR_LOG_LEVEL: "error", ...env };
}

/** Runs the CLI to completion, with `--cluster <every node>` unless `bare`. */
function cli(
  args: string[],
  options: { env?: Record<string, string>; bare?: boolean } = {},
): Promise<ProcessResult> {
  return runProcess(
    [...cliArgv, ...args, ...(options.bare ? [] : ["--cluster", nodes])],
    cliEnv(options.env ?? {}),
  );
}

/** A long-running CLI process (tail, run) on the cluster, its output watched as it comes. */
function start(args: string[]) {
  const child: ChildProcess = spawn(process.execPath, [...cliArgv, ...args, "--cluster", nodes], {
    env: cliEnv({}),
  });
  const out = { stdout: "", stderr: "" };
  child.stdout?.on("data", (d) => {
    out.stdout += d;
  });
  child.stderr?.on("data", (d) => {
    out.stderr += d;
  });
  const exited = new Promise<number | null>((resolve) => child.on("close", resolve));
  return {
    out,
    events: () =>
      out.stdout
        .split("\n")
        .filter(Boolean)
        .map((l) => JSON.parse(l) as Record<string, unknown>),
    waitFor: (check: () => boolean, what: string) =>
      // Generous: a child starts through tsx, and on a busy machine that takes seconds.
      waitFor(check, 20_000, `${what}; stdout: ${out.stdout}; stderr: ${out.stderr}`),
    stop: (signal: NodeJS.Signals = "SIGINT") => {
      child.kill(signal);
      return exited;
    },
  };
}

/** Runs the CLI's `main` in this process (for checks that need no cluster child). */
async function inProcess(args: string[]): Promise<{ code: number; err: string }> {
  let err = "";
  const code = await main(args, {
    out: () => {},
    err: (t) => {
      err += `${t}\n`;
    },
  });
  return { code, err };
}

function json<T = Record<string, unknown>>(r: ProcessResult): T {
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as T;
}

/**
 * App ids `base-<n>` whose keys (the `{app}` slot) are served by as many different masters as
 * there are bases, one base per master.
 */
async function appsOnDistinctMasters(bases: readonly string[]): Promise<string[]> {
  const chosen: string[] = [];
  const used = new Set<number>();
  for (const base of bases) {
    for (let n = 0; ; n++) {
      const id = uniqueId(`${base}-${n}`);
      const master = await cluster.masterOf(`status:{${id}}`);
      if (used.has(master.port)) continue;
      used.add(master.port);
      chosen.push(id);
      break;
    }
  }
  return chosen;
}

type Echo = { ping: { payload: { n: number }; reply: { pong: { n: number } } } };
let echo: string;
let fragile: string;
let parked: string;
let parkedId: string;

beforeAll(async () => {
  cluster = await startCluster({ replicasPerMaster: 0 });
  nodes = cluster.startupNodes.join(",");
  [echo, fragile, parked] = (await appsOnDistinctMasters(["echo", "fragile", "parked"])) as [
    string,
    string,
    string,
  ];
  system = await createSystem({
    appId: uniqueId("cli-cluster-sys"),
    cluster: { nodes: cluster.startupNodes },
    logger: pino({ level: "silent" }),
  });
  await system.spawn(defineActor<Echo>({ id: echo, handlers: { ping: (p) => ({ pong: p }) } }));
  await system.spawn(
    defineActor<{ work: { payload: Record<string, unknown> } }>({
      id: fragile,
      maxAttempts: 1,
      onFailure: "resume",
      handlers: {
        work: () => {
          throw new Error("disk full");
        },
      },
    }),
  );
  // An inbox nobody serves: the app announced itself, then stopped.
  await system.spawn(
    defineActor<{ job: { payload: { n: number } } }>({ id: parked, handlers: { job: () => {} } }),
  );
  await system.stop(parked);
  parkedId = await system.ref<{ job: { payload: { n: number } } }>(parked).tell("job", { n: 1 });
  await system.ref(fragile).tell("work", {});
  const c = cluster.client();
  await waitFor(async () => (await c.zcard(`queue:{${fragile}}:dead`)) === 1, 5000, "the dead letter");
}, 30_000);

afterAll(async () => {
  await system?.shutdown();
  await cluster?.stop();
  rmSync(workDir, { recursive: true, force: true });
});

describe("connecting", () => {
  it("takes the cluster from REDIS_CLUSTER; refuses --redis with --cluster, and a node that is not a Redis URL", async () => {
    const fromEnv = await cli(["ls", "--json"], { bare: true, env: { REDIS_CLUSTER: nodes } });
    expect(json<{ app: string }[]>(fromEnv).map((r) => r.app)).toContain(echo);
    // Command-line checks and failures to connect, in this process: no child needed.
    expect(await inProcess(["ls", "--redis", "redis://127.0.0.1:6379", "--cluster", nodes])).toMatchObject({
      code: 2,
      err: expect.stringContaining("not both"),
    });
    expect(await inProcess(["ls", "--cluster", "http://127.0.0.1:7000"])).toMatchObject({
      code: 2,
      err: expect.stringContaining("redis:// or rediss://"),
    });
  });

  it("lets --redis win over REDIS_CLUSTER, and says which cluster it cannot reach (exit 1)", async () => {
    const saved = process.env.REDIS_CLUSTER;
    process.env.REDIS_CLUSTER = nodes;
    try {
      const redisWins = await inProcess(["ls", "--redis", "redis://127.0.0.1:1"]);
      expect(redisWins).toMatchObject({
        code: 1,
        err: expect.stringContaining("Redis at redis://127.0.0.1:1"),
      });
    } finally {
      if (saved === undefined) delete process.env.REDIS_CLUSTER;
      else process.env.REDIS_CLUSTER = saved;
    }
    const down = await inProcess(["ls", "--cluster", "redis://127.0.0.1:1"]);
    expect(down).toMatchObject({
      code: 1,
      err: expect.stringContaining("cluster 127.0.0.1:1"),
    });
  });
});

describe("reading", () => {
  it("ls finds the apps on every master, with their queue sizes", async () => {
    const rows = json<{ app: string; status: string; kind: string; inbox: number; dead: number }[]>(
      await cli(["ls", "--json"]),
    );
    const byApp = new Map(rows.map((r) => [r.app, r]));
    expect(byApp.get(echo)).toMatchObject({ status: "online", kind: "redactor" });
    expect(byApp.get(parked)).toMatchObject({ status: "offline", inbox: 1 });
    expect(byApp.get(fragile)).toMatchObject({ status: "online", dead: 1 });
    // The three apps' keys are on three different masters.
    const masters = await Promise.all(
      [echo, fragile, parked].map((app) => cluster.masterOf(`status:{${app}}`)),
    );
    expect(new Set(masters.map((m) => m.port)).size).toBe(3);
  });

  it("inspect shows an app's inbox; message finds a message by id with or without --app", async () => {
    const inspected = json<{ app: string; inbox: { total: number; entries: { id: string }[] } }>(
      await cli(["inspect", parked, "--json"]),
    );
    expect(inspected.inbox.total).toBe(1);
    expect(inspected.inbox.entries[0]?.id).toBe(parkedId);
    const [scanned, direct] = await Promise.all([
      cli(["message", parkedId, "--json"]),
      cli(["message", parkedId, "--app", parked, "--json"]),
    ]);
    for (const r of [json(scanned), json(direct)]) {
      expect(r).toMatchObject({
        id: parkedId,
        status: "pending",
        fields: { recipient: parked, sender: system.appId },
        // The inbox copy on the recipient's master, the outbox copy on the sender's.
        locations: expect.arrayContaining([
          expect.objectContaining({ where: "inbox", app: parked, position: 1 }),
          expect.objectContaining({ where: "outbox", app: system.appId }),
        ]),
      });
    }
    expect(await inProcess(["message", "no-such-id", "--cluster", nodes])).toMatchObject({
      code: 1,
      err: expect.stringContaining("unknown message"),
    });
  });

  it("dlq ls lists the dead letters of an app; dlq retry puts them back", async () => {
    const listed = json<{ total: number; entries: { id: string; error: string; reason: string }[] }>(
      await cli(["dlq", "ls", fragile, "--json"]),
    );
    expect(listed.total).toBe(1);
    expect(listed.entries[0]).toMatchObject({ reason: "handler-error", error: "Error: disk full" });
    // Back in the inbox and its hash pending again, in one transaction on the app's master.
    // (It fails again at once: no count of what remains.)
    const retried = json<{ retried: { id: string }[]; skipped: unknown[] }>(
      await cli(["dlq", "retry", fragile, "--json"]),
    );
    expect(retried).toMatchObject({ retried: [{ id: listed.entries[0]?.id }], skipped: [] });
  });
});

describe("writing", () => {
  it("send puts a message in an inbox on its master; ask gets the reply", async () => {
    const [sent, asked] = await Promise.all([
      cli(["send", parked, "job", '{"n": 2}']),
      cli(["ask", echo, "ping", '{"n": 5}', "--json", "--timeout", "20s"]),
    ]);
    expect(sent.code, sent.stderr).toBe(0);
    const id = sent.stdout.trim();
    const c = cluster.client();
    expect(await c.hget(`message:{${parked}}:${id}`, "status")).toBe("pending");
    expect(await c.zcard(`queue:{${parked}}:inbox`)).toBe(2);
    expect(json<{ reply: unknown }>(asked).reply).toEqual({ pong: { n: 5 } });
    const message = json<{ status: string }>(await cli(["message", id, "--json"]));
    expect(message.status).toBe("pending");
  });

  it("run serves a module's actors on the cluster until SIGTERM", async () => {
    const runEcho = uniqueId("run-echo");
    const file = join(workDir, "actors.mjs");
    writeFileSync(
      file,
      `export const echo = { id: ${JSON.stringify(runEcho)}, handlers: { ping: (p) => ({ pong: p }) } };\n`,
    );
    const proc = start(["run", file, "--json"]);
    await proc.waitFor(() => proc.events().some((e) => e.event === "ready"), "the ready event");
    expect(await system.ref<Echo>(runEcho).ask("ping", { n: 3 }, { timeoutMs: 15_000 })).toEqual({
      pong: { n: 3 },
    });
    expect(await proc.stop("SIGTERM")).toBe(0);
    const c = cluster.client();
    expect(await c.hget(`status:{${runEcho}}`, "status")).toBe("offline");
    // Its throw-away app id is forgotten (one DEL of keys in one slot).
    const { appId } = proc.events().find((e) => e.event === "ready") as { appId: string };
    expect(await c.exists(`status:{${appId}}`)).toBe(0);
  });
});

describe("tail", () => {
  it("sees sends to a named app on its sharded channel, its replies from its outbox, and their finishes", async () => {
    const named = start(["tail", echo, "--json", "--interval", "50ms"]);
    const every = start(["tail", "--json", "--interval", "50ms"]);
    await named.waitFor(() => named.out.stderr.includes("sharded channels"), "tail to start");
    await every.waitFor(() => every.out.stderr.includes("sharded channels"), "tail to start");
    const request = await system.ref<Echo>(echo).tell("ping", { n: 9 });
    type Tail = typeof named;
    const has = (tail: Tail, check: (e: Record<string, unknown>) => boolean) => tail.events().some(check);
    for (const tail of [named, every]) {
      await tail.waitFor(
        () =>
          has(tail, (e) => e.id === request && e.event === "sent") &&
          has(tail, (e) => e.id === request && e.status === "completed"),
        "the request's send and finish",
      );
    }
    expect(named.events().find((e) => e.id === request && e.event === "sent")).toMatchObject({
      sender: system.appId,
      recipient: echo,
      type: "ping",
    });
    // The reply goes to the system's app, which the named tail does not follow: it is read from
    // echo's outbox.
    await named.waitFor(
      () => has(named, (e) => e.event === "sent" && e.sender === echo && e.replyTo === request),
      "echo's reply",
    );
    expect(await named.stop()).toBe(0);
    expect(await every.stop()).toBe(0);
  });
});
