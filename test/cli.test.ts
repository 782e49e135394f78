/**
 * The `redactor` CLI, run as a child process from a fresh build (the package's `bin`), against a
 * throw-away Redis and a live system spawned in this process.
 */
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { copyFileSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { unhandledTypes } from "../src/cli/commands/dlq.js";
import { type ActorSystem, createSystem, defineActor, Priority } from "../src/index.js";
import { Keyspace } from "../src/keyspace.js";
import { freePort, uniqueId, useRedis } from "./harness/redis.js";
import { type ProcessResult, runProcess, waitFor } from "./harness/system.js";

const run = promisify(execFile);
const root = fileURLToPath(new URL("..", import.meta.url));
/** A private package root (package.json + dist/), so that the build races nobody's `dist`. */
const pkgRoot = join(root, ".redactor-test", `cli-${process.pid}`);
const pkg = JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as {
  version: string;
  bin: Record<string, string>;
};
const bin = join(pkgRoot, pkg.bin.redactor as string);

const redis = useRedis();

/** Runs the built CLI to completion. */
function cli(
  args: string[],
  options: { input?: string; env?: Record<string, string> } = {},
): Promise<ProcessResult> {
  // REDIS_CLUSTER emptied: set, it would take the CLI to a cluster instead of REDIS_URL.
  const env = {
    ...process.env,
    REDIS_URL: redis().url,
    REDIS_CLUSTER: "",
    REDACTOR_LOG_LEVEL: "error",
    ...options.env,
  };
  return runProcess([bin, ...args], env, options.input);
}

/** A long-running CLI process (tail, run) whose output is watched as it comes. */
function start(args: string[], options: { cwd?: string } = {}) {
  const child: ChildProcess = spawn(process.execPath, [bin, ...args], {
    env: { ...process.env, REDIS_URL: redis().url, REDIS_CLUSTER: "", REDACTOR_LOG_LEVEL: "error" },
    cwd: options.cwd,
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
    exited,
    /** The stdout lines parsed as JSON. */
    events: () =>
      out.stdout
        .split("\n")
        .filter(Boolean)
        .map((l) => JSON.parse(l) as Record<string, unknown>),
    waitFor: (check: () => boolean, what: string) =>
      waitFor(check, 8000, `${what}; stdout: ${out.stdout}; stderr: ${out.stderr}`),
    stop: async (signal: NodeJS.Signals = "SIGINT") => {
      child.kill(signal);
      return exited;
    },
  };
}

function json<T = Record<string, unknown>>(r: ProcessResult): T {
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as T;
}

const ids = {
  echo: uniqueId("echo"),
  fragile: uniqueId("fragile"),
  slow: uniqueId("slow"),
  parked: uniqueId("parked"),
  peer: uniqueId("peer"),
  courteous: uniqueId("courteous"),
};
let system: ActorSystem;
let failing = true;
let releaseSlow: () => void = () => {};
const slowGate = new Promise<void>((r) => {
  releaseSlow = r;
});
/** Message ids of the parked backlog, by payload n. */
const parkedIds: Record<number, string> = {};
const bareId = uniqueId("bare");

beforeAll(async () => {
  mkdirSync(join(pkgRoot, "dist"), { recursive: true });
  copyFileSync(join(root, "package.json"), join(pkgRoot, "package.json"));
  // The bin (bin/redactor.js) runs dist/ here: pkgRoot is not a checkout (no tsconfig.json).
  mkdirSync(join(pkgRoot, "bin"), { recursive: true });
  copyFileSync(join(root, "bin", "redactor.js"), join(pkgRoot, "bin", "redactor.js"));
  const build = run(process.execPath, [
    join(root, "node_modules", "typescript", "bin", "tsc"),
    "-p",
    join(root, "tsconfig.build.json"),
    "--outDir",
    join(pkgRoot, "dist"),
  ]).then(() => run(process.execPath, [join(root, "scripts", "copy-lua.mjs"), join(pkgRoot, "dist")]));

  system = await createSystem({
    appId: uniqueId("cli-sys"),
    redis: redis().url,
    logger: pino({ level: "silent" }),
  });
  await system.spawn(
    defineActor<{ ping: { payload: { n: number }; reply: { pong: { n: number } } } }>({
      id: ids.echo,
      handlers: { ping: (p) => ({ pong: p }) },
    }),
  );
  await system.spawn(
    defineActor<{ work: { payload: Record<string, unknown> } }>({
      id: ids.fragile,
      maxAttempts: 1,
      onFailure: "resume",
      handlers: {
        work: async () => {
          if (failing) throw new Error("disk full");
        },
      },
    }),
  );
  await system.spawn(
    defineActor<{ survey: { payload: Record<string, unknown> } }>({
      id: ids.slow,
      handlers: { survey: () => slowGate },
    }),
  );
  // Replies like the C++ peer: a separate message without reply_to.
  type Cmd = { command: { payload: { command_id: string } } };
  await system.spawn(
    defineActor<Cmd>({
      id: ids.courteous,
      handlers: {
        command: async (p, ctx) => {
          await ctx
            .ref(ctx.message.sender)
            .tell("command_response", { command_id: p.command_id, status: "success" });
        },
      },
    }),
  );
  // A redactor inbox with a backlog nobody serves, including a peer-scored and a malformed member.
  await system.spawn(
    defineActor<{ job: { payload: { n: number } } }>({ id: ids.parked, handlers: { job: () => {} } }),
  );
  await system.stop(ids.parked);
  const parked = system.ref<{ job: { payload: { n: number } } }>(ids.parked);
  const order: [number, Priority][] = [
    [1, Priority.LOW],
    [2, Priority.NORMAL],
    [3, Priority.CRITICAL],
    [4, Priority.NORMAL],
  ];
  for (const [n, priority] of order) {
    parkedIds[n] = await parked.tell("job", { n }, { priority, ...(n === 3 ? { timeoutMs: 600_000 } : {}) });
  }
  const c = redis().client();
  const now = Date.now() / 1000;
  await c.zadd(
    `queue:${ids.parked}:inbox`,
    3000 + now,
    JSON.stringify({
      id: bareId,
      sender: "cpp",
      recipient: ids.parked,
      message_type: "job",
      payload: {},
      priority: 3,
      timestamp: now - 5,
    }),
  );
  await c.zadd(`queue:${ids.parked}:inbox`, 5, "not json");
  // A peer that never heartbeats, with the peers' own scores.
  await c.hset(`status:${ids.peer}`, "status", "online");
  for (const [p, age] of [
    [2, 30],
    [2, 10],
    [4, 20],
  ] as const) {
    const ts = now - age;
    await c.zadd(
      `queue:${ids.peer}:inbox`,
      p * 1000 + ts,
      JSON.stringify({
        id: `lp-${p}-${age}`,
        sender: "pm",
        recipient: ids.peer,
        message_type: "ping",
        payload: {},
        priority: p,
        timestamp: ts,
        reply_to: null,
        timeout: null,
      }),
    );
  }
  await system.ref(ids.slow).tell("survey", {});
  await build;
});

afterAll(async () => {
  releaseSlow();
  await system?.shutdown();
  rmSync(pkgRoot, { recursive: true, force: true });
});

describe("command line", () => {
  it("prints --help for every command and exits 0; usage errors exit 2", async () => {
    const commands = [
      [],
      ["ls"],
      ["inspect"],
      ["send"],
      ["ask"],
      ["tail"],
      ["message"],
      ["dlq"],
      ["dlq", "ls"],
      ["dlq", "retry"],
      ["dlq", "purge"],
      ["run"],
    ];
    const helps = await Promise.all(commands.map((c) => cli([...c, "--help"])));
    for (const [i, h] of helps.entries()) {
      expect(h.code, commands[i]?.join(" ")).toBe(0);
      expect(h.stdout).toMatch(/^Usage: redactor/);
    }
    expect(helps[2]?.stdout).toContain("--limit <n>");
    const [none, unknown, badOption, missing, group, version] = await Promise.all([
      cli([]),
      cli(["lss"]),
      cli(["ls", "--frobnicate"]),
      cli(["inspect"]),
      cli(["dlq"]),
      cli(["--version"]),
    ]);
    expect(none.code).toBe(2);
    expect(unknown).toMatchObject({ code: 2, stderr: expect.stringContaining('did you mean "ls"') });
    expect(badOption).toMatchObject({ code: 2, stderr: expect.stringContaining("--frobnicate") });
    expect(missing).toMatchObject({ code: 2, stderr: expect.stringContaining("missing <app>") });
    expect(group.code).toBe(2);
    expect(version).toMatchObject({ code: 0, stdout: `${pkg.version}\n` });
  });

  it("refuses a negative number with what the value must be, and an empty message id (exit 2)", async () => {
    const cases: [string[], string][] = [
      [
        ["inspect", ids.echo, "--limit", "-1"],
        '--limit must be a positive whole number (1 or more), got "-1"',
      ],
      [["send", ids.echo, "ping", "{}", "--timeout", "-5s"], "--timeout must be a positive duration"],
      [["dlq", "purge", ids.fragile, "--older-than", "-1d"], "--older-than must be a positive duration"],
      [
        ["run", "./actors.js", "--metrics-port", "-1"],
        '--metrics-port must be a port number 0-65535, got "-1"',
      ],
      [["gc", "--grace", "-1h"], '--grace must be a positive duration like 500ms, 5s, 2m or 1h, got "-1h"'],
      [["tail", "--count", "-1"], "--count must be a positive whole number"],
      [["ask", ids.echo, "ping", "{}", "--priority", "-2"], "--priority must be low, normal, high, critical"],
      [["dashboard", "--port", "-8080"], '--port must be a port number 0-65535, got "-8080"'],
      // A text option's value may start with "-": parseArgs's advice stands.
      [["send", ids.echo, "ping", "{}", "--id", "-5"], "use '--id=-XYZ'"],
      [["message", ""], "missing <id>"],
      [["inspect", ""], "invalid app id in <app>"],
    ];
    const results = await Promise.all(cases.map(([args]) => cli(args)));
    for (const [i, r] of results.entries()) {
      const [args, message] = cases[i] as [string[], string];
      expect(r.code, args.join(" ")).toBe(2);
      expect(r.stderr, args.join(" ")).toContain(message);
      if (message.includes(" must be ")) expect(r.stderr, args.join(" ")).not.toContain("ambiguous");
      expect(r.stderr, args.join(" ")).toContain(`usage: redactor ${args[0]}`);
    }
  });

  it("says how to reach Redis when it cannot (exit 1), and rejects a bad URL (exit 2)", async () => {
    const port = await freePort();
    const [down, bad] = await Promise.all([
      cli(["ls", "--redis", `redis://127.0.0.1:${port}`]),
      cli(["ls", "--redis", "localhost"]),
    ]);
    expect(down).toMatchObject({ code: 1, stderr: expect.stringContaining("cannot reach Redis") });
    expect(down.stderr).toContain("REDIS_URL");
    expect(bad).toMatchObject({ code: 2, stderr: expect.stringContaining("not a Redis URL") });
  });
});

describe("ls and inspect", () => {
  it("lists apps with presence, kind and queue sizes", async () => {
    const rows = json<Record<string, unknown>[]>(await cli(["ls", "--json"]));
    const byApp = new Map(rows.map((r) => [r.app, r]));
    expect(byApp.get(ids.echo)).toMatchObject({
      status: "online",
      kind: "redactor",
      heartbeat: "alive",
      inbox: 0,
    });
    expect(byApp.get(ids.parked)).toMatchObject({ status: "offline", kind: "redactor", inbox: 6 });
    expect(byApp.get(ids.peer)).toMatchObject({
      status: "online",
      kind: "peer",
      heartbeat: "none",
      inbox: 3,
    });
    expect(byApp.get(ids.slow)).toMatchObject({ inFlight: 1 });
    const online = json<{ app: string }[]>(await cli(["ls", "--online", "--json"])).map((r) => r.app);
    expect(online).toContain(ids.echo);
    expect(online).not.toContain(ids.parked);
    const table = await cli(["ls"]);
    expect(table.code).toBe(0);
    expect(table.stdout).toMatch(/^APP\s+STATUS\s+KIND\s+HOSTED BY\s+LAST SEEN\s+INBOX\s+IN FLIGHT\s+DEAD/);
    expect(table.stdout).toMatch(
      new RegExp(`${ids.parked}\\s+offline\\s+redactor\\s+-\\s+\\S+ ago\\s+6\\s+0\\s+0`),
    );
  });

  it("shows a redactor inbox in run order, peer-scored members placed where the claim will put them", async () => {
    const view = json<{ ordering: string; inbox: { total: number; entries: Record<string, unknown>[] } }>(
      await cli(["inspect", ids.parked, "--json"]),
    );
    expect(view.ordering).toBe("canonical");
    expect(view.inbox.total).toBe(6);
    const order = view.inbox.entries.map((e) => [e.position, e.id, e.priority]);
    expect(order).toEqual([
      [1, parkedIds[3], 4],
      [2, bareId, 3],
      [3, parkedIds[2], 2],
      [4, parkedIds[4], 2],
      [5, parkedIds[1], 1],
      [null, null, undefined],
    ]);
    expect(view.inbox.entries[0]).toMatchObject({ deadline: expect.any(Number), ageMs: expect.any(Number) });
    expect(view.inbox.entries[1]).toMatchObject({ scoreKind: "foreign" });
    expect(view.inbox.entries[5]?.problem).toContain("not valid JSON");
    const human = await cli(["inspect", ids.parked]);
    expect(human.stdout).toContain("redactor: strict priority, oldest first");
    expect(human.stdout).toContain("peer score, re-scored on next claim");
    expect(human.stdout).toContain("refused on claim");
    expect(human.stdout).toMatch(/1\s+\S+\s+job\s+\S+\s+CRITICAL/);
  });

  it("shows a peer's inbox in its ZPOPMAX order, and leases with their owner", async () => {
    const peer = json<{ ordering: string; inbox: { entries: { id: string }[] } }>(
      await cli(["inspect", ids.peer, "--json"]),
    );
    expect(peer.ordering).toBe("peer");
    expect(peer.inbox.entries.map((e) => e.id)).toEqual(["lp-4-20", "lp-2-10", "lp-2-30"]);
    const slow = json<{ inFlight: { total: number; entries: Record<string, unknown>[] } }>(
      await cli(["inspect", ids.slow, "--json"]),
    );
    expect(slow.inFlight.total).toBe(1);
    expect(slow.inFlight.entries[0]).toMatchObject({ state: "leased", type: "survey", attempts: 1 });
    expect(String(slow.inFlight.entries[0]?.lease)).toContain(system.nodeId);
    expect(Number(slow.inFlight.entries[0]?.untilInMs)).toBeGreaterThan(0);
    const human = await cli(["inspect", ids.slow]);
    expect(human.stdout).toMatch(/in flight: 1\n.*\n.*survey.*leased\s+in \S+/);
    const unknown = await cli(["inspect", uniqueId("nobody")]);
    expect(unknown).toMatchObject({ code: 1, stderr: expect.stringContaining("redactor ls") });
  });

  it("shows the types an actor handles and the process hosting it; a peer's are unknown", async () => {
    const echo = json<{ hosts: string[]; handles: { types: string[]; complete: boolean } | null }>(
      await cli(["inspect", ids.echo, "--json"]),
    );
    expect(echo.hosts).toEqual([system.nodeId]);
    expect(echo.handles).toEqual({ types: ["ping"], anyType: false, cut: false, complete: true });
    const human = await cli(["inspect", ids.echo]);
    expect(human.stdout).toMatch(
      new RegExp(`^hosted by\\s+${system.nodeId.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}$`, "m"),
    );
    expect(human.stdout).toMatch(/^handles\s+ping$/m);
    const peer = await cli(["inspect", ids.peer]);
    expect(peer.stdout).toMatch(/^handles\s+- \(not announced/m);
    expect(json<{ handles: unknown }>(await cli(["inspect", ids.peer, "--json"])).handles).toBeNull();
  });
});

describe("send and ask", () => {
  it("sends a message as redactor does and prints its id", async () => {
    const sent = await cli(["send", ids.parked, "job", '{"n": 5}', "--priority", "high", "--timeout", "1m"]);
    expect(sent.code).toBe(0);
    const id = sent.stdout.trim();
    expect(sent.stderr).toContain(`sent "job" to ${ids.parked}`);
    expect(sent.stderr).toContain("not online");
    const c = redis().client();
    expect(await c.hgetall(`message:${id}`)).toMatchObject({
      status: "pending",
      sender: "redactor-cli",
      type: "job",
    });
    const member = (await c.zrange(`queue:${ids.parked}:inbox`, 0, -1)).find((m) => m.includes(id)) ?? "{}";
    expect(JSON.parse(member)).toMatchObject({
      id,
      priority: 3,
      payload: { n: 5 },
      timeout: 60,
      reply_to: null,
    });
    const viaStdin = json<{ id: string; payload: unknown; sender: string }>(
      await cli(["send", ids.parked, "job", "-", "--json", "--from", "ground"], { input: '{"n": 6}' }),
    );
    expect(viaStdin).toMatchObject({ payload: { n: 6 }, sender: "ground" });
    await c.zrem(`queue:${ids.parked}:inbox`, member);
    const all = await c.zrange(`queue:${ids.parked}:inbox`, 0, -1);
    await c.zrem(`queue:${ids.parked}:inbox`, ...all.filter((m) => m.includes(viaStdin.id)));
  });

  it("refuses bad input with exit 2 and a duplicate id with exit 1", async () => {
    const fixed = uniqueId("fixed");
    const [notJson, notObject, badPriority, first] = await Promise.all([
      cli(["send", ids.echo, "ping", "{n:1}"]),
      cli(["send", ids.echo, "ping", "[1]"]),
      cli(["send", ids.echo, "ping", "{}", "--priority", "urgent"]),
      cli(["send", ids.parked, "job", "{}", "--id", fixed]),
    ]);
    expect(notJson).toMatchObject({ code: 2, stderr: expect.stringContaining("not valid JSON") });
    expect(notObject).toMatchObject({ code: 2, stderr: expect.stringContaining("JSON object") });
    expect(badPriority).toMatchObject({ code: 2, stderr: expect.stringContaining("--priority") });
    expect(first.code).toBe(0);
    const again = await cli(["send", ids.parked, "job", "{}", "--id", fixed]);
    expect(again).toMatchObject({ code: 1, stderr: expect.stringContaining("already pending") });
    const c = redis().client();
    const members = await c.zrange(`queue:${ids.parked}:inbox`, 0, -1);
    await c.zrem(`queue:${ids.parked}:inbox`, ...members.filter((m) => m.includes(fixed)));
  });

  it("asks and prints the reply; exits 1 with the request's fate when none comes", async () => {
    const [plain, asJson, failed] = await Promise.all([
      cli(["ask", ids.echo, "ping", '{"n": 1}']),
      cli(["ask", ids.echo, "ping", '{"n": 2}', "--json", "--priority", "critical"]),
      cli(["ask", ids.fragile, "work", "{}", "--timeout", "700ms"]),
    ]);
    expect(plain.code).toBe(0);
    expect(JSON.parse(plain.stdout)).toEqual({ pong: { n: 1 } });
    expect(plain.stderr).toMatch(/reply from .* in [\d.]+ ms/);
    expect(json(asJson)).toMatchObject({
      recipient: ids.echo,
      reply: { pong: { n: 2 } },
      latencyMs: expect.any(Number),
    });
    expect(failed).toMatchObject({
      code: 1,
      stderr: expect.stringContaining("the request failed (Error: disk full)"),
    });
    // The CLI's throw-away app leaves nothing behind.
    const [, keys] = await redis().client().scan("0", "MATCH", "*redactor-ask-*", "COUNT", 10_000);
    expect(keys).toEqual([]);
  });

  it("matches a peer's reply that has no reply_to with --reply-type and --match-field", async () => {
    const [unmatched, matched] = await Promise.all([
      cli(["ask", ids.courteous, "command", '{"command_id": "c1"}', "--timeout", "600ms"]),
      cli([
        "ask",
        ids.courteous,
        "command",
        '{"command_id": "c2"}',
        "--reply-type",
        "command_response",
        "--match-field",
        "command_id",
        "--json",
      ]),
    ]);
    expect(unmatched).toMatchObject({ code: 1, stderr: expect.stringContaining("--reply-type") });
    expect(json(matched)).toMatchObject({ reply: { command_id: "c2", status: "success" } });
  });
});

describe("tail", () => {
  it("streams sends and finishes of the chosen apps, polling, and exits 0 on SIGINT", async () => {
    const tail = start(["tail", ids.echo, ids.fragile, "--json", "--interval", "50ms"]);
    await tail.waitFor(() => tail.out.stderr.includes("polling every 50 ms"), "tail to start");
    const other = await system.ref(ids.parked).tell("job", { n: 99 });
    // Tells in one tick go out as one batch, which publishes only its last id.
    const [pinged, batched] = await Promise.all([
      system.ref(ids.echo).tell("ping", { n: 7 }, { priority: Priority.HIGH }),
      system.ref(ids.echo).tell("ping", { n: 8 }, { priority: Priority.LOW }),
    ]);
    failing = true;
    const broken = await system.ref(ids.fragile).tell("work", {});
    const has = (id: string, event: string, status?: string) =>
      tail
        .events()
        .some((e) => e.id === id && e.event === event && (status === undefined || e.status === status));
    await tail.waitFor(
      () =>
        has(pinged, "status", "completed") &&
        has(batched, "status", "completed") &&
        has(broken, "status", "failed"),
      "the finishes",
    );
    const events = tail.events();
    expect(events.find((e) => e.id === pinged && e.event === "sent")).toMatchObject({
      sender: system.appId,
      recipient: ids.echo,
      type: "ping",
      priority: 3,
    });
    expect(events.find((e) => e.id === batched && e.event === "sent")).toMatchObject({ priority: 1 });
    expect(events.find((e) => e.id === pinged && e.status === "completed")).toMatchObject({
      latencyMs: expect.any(Number),
    });
    expect(events.find((e) => e.id === broken && e.status === "failed")).toMatchObject({
      error: "Error: disk full",
    });
    // The echo's reply is sent by echo, so it is shown too; the parked message is not.
    expect(events.some((e) => e.event === "sent" && e.sender === ids.echo && e.replyTo === pinged)).toBe(
      true,
    );
    expect(events.some((e) => e.id === other)).toBe(false);
    expect(await tail.stop("SIGINT")).toBe(0);
    await redis()
      .client()
      .zrem(
        `queue:${ids.parked}:inbox`,
        ...(await redis().client().zrange(`queue:${ids.parked}:inbox`, 0, -1)).filter((m) =>
          m.includes(other),
        ),
      );
  });

  it("uses keyspace notifications when they are on, and sees a peer's bare ZADD once it runs", async () => {
    const c = redis().client();
    await c.config("SET", "notify-keyspace-events", "Kh");
    try {
      const tail = start(["tail", ids.echo]);
      await tail.waitFor(() => tail.out.stderr.includes("keyspace notifications"), "tail to start");
      const [pinged, batched] = await Promise.all([
        system.ref(ids.echo).tell("ping", { n: 8 }),
        system.ref(ids.echo).tell("ping", { n: 9 }),
      ]);
      const bare = uniqueId("bare");
      await c.zadd(
        `queue:${ids.echo}:inbox`,
        3000,
        JSON.stringify({
          id: bare,
          sender: "cpp",
          recipient: ids.echo,
          message_type: "ping",
          payload: { n: 9 },
          priority: 3,
          timestamp: 1234567890,
        }),
      );
      await tail.waitFor(
        () =>
          new RegExp(`completed .*${pinged}`).test(tail.out.stdout) &&
          new RegExp(`sent .*${batched}`).test(tail.out.stdout) &&
          new RegExp(`completed .*${bare}`).test(tail.out.stdout),
        "both completions",
      );
      const lines = tail.out.stdout.split("\n");
      const sentAt = lines.findIndex((l) => l.includes(pinged) && /\ssent\s/.test(l));
      const doneAt = lines.findIndex((l) => l.includes(pinged) && l.includes("completed"));
      expect(sentAt).toBeGreaterThanOrEqual(0);
      expect(doneAt).toBeGreaterThan(sentAt);
      expect(lines[sentAt]).toMatch(new RegExp(`${system.appId} → ${ids.echo}\\s+ping\\s+NORMAL`));
      expect(await tail.stop("SIGTERM")).toBe(0);
    } finally {
      await c.config("SET", "notify-keyspace-events", "");
    }
  });

  it("stops by itself after --count events", async () => {
    const tail = start(["tail", ids.echo, "--json", "--count", "1"]);
    await tail.waitFor(() => tail.out.stderr.includes("watching"), "tail to start");
    await system.ref(ids.echo).tell("ping", { n: 10 });
    await tail.waitFor(() => tail.events().length === 1, "one event");
    expect(await tail.exited).toBe(0);
    expect(tail.events()).toHaveLength(1);
  });

  it("keeps only the message types named with --type", async () => {
    const tail = start(["tail", ids.echo, ids.fragile, "--json", "--interval", "50ms", "--type", "ping"]);
    await tail.waitFor(() => tail.out.stderr.includes("(types ping)"), "tail to start");
    failing = false;
    const work = await system.ref(ids.fragile).tell("work", {});
    const pinged = await system.ref(ids.echo).tell("ping", { n: 11 });
    await tail.waitFor(
      () => tail.events().some((e) => e.id === pinged && e.status === "completed"),
      "the ping to finish",
    );
    await waitFor(async () => (await system.messageStatus(work)) === "completed", 5000, "the work");
    // A few polls more: the work's finish would have been seen by now.
    await new Promise((r) => setTimeout(r, 300));
    expect(await tail.stop("SIGINT")).toBe(0);
    const events = tail.events();
    expect(events.some((e) => e.id === pinged && e.event === "sent")).toBe(true);
    expect(events.every((e) => e.type === "ping")).toBe(true);
    expect(events.some((e) => e.id === work)).toBe(false);
    // The echo's reply has a type of its own: named, it is shown too.
    const both = start([
      "tail",
      ids.echo,
      "--json",
      "--interval",
      "50ms",
      "--type",
      "ping",
      "--type",
      "ping_reply",
    ]);
    await both.waitFor(() => both.out.stderr.includes("(types ping, ping_reply)"), "tail to start");
    const again = await system.ref(ids.echo).tell("ping", { n: 12 });
    await both.waitFor(
      () => both.events().some((e) => e.event === "sent" && e.type === "ping_reply" && e.replyTo === again),
      "the reply",
    );
    expect(await both.stop("SIGINT")).toBe(0);
  });
});

describe("message and dlq", () => {
  async function deadLetter(): Promise<string> {
    failing = true;
    const id = await system.ref(ids.fragile).tell("work", { at: Date.now() });
    await waitFor(async () => (await system.messageStatus(id)) === "failed", 3000, "the dead letter");
    return id;
  }

  it("shows a message's status, where it is and its history", async () => {
    const dead = await deadLetter();
    const view = json<{
      status: string;
      locations: Record<string, unknown>[];
      history: { event: string }[];
      fields: Record<string, string>;
    }>(await cli(["message", dead, "--json"]));
    expect(view.status).toBe("failed");
    expect(view.fields).toMatchObject({
      sender: system.appId,
      recipient: ids.fragile,
      type: "work",
      attempts: "1",
      error: "Error: disk full",
    });
    expect(view.locations).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ where: "dead", app: ids.fragile, reason: "handler-error" }),
      ]),
    );
    expect(view.history.map((h) => h.event)).toEqual(["sent", "claimed", "dead-lettered", "failed"]);
    const human = await cli(["message", dead]);
    expect(human.stdout).toContain(`in the dead letters of ${ids.fragile} (handler-error)`);
    const [queued, noHash, unknown] = await Promise.all([
      cli(["message", parkedIds[3] as string, "--json"]),
      cli(["message", bareId]),
      cli(["message", uniqueId("nope")]),
    ]);
    expect(json<{ locations: unknown[] }>(queued).locations).toContainEqual(
      expect.objectContaining({ where: "inbox", app: ids.parked, position: 1 }),
    );
    expect(noHash.stdout).toContain(`in the inbox of ${ids.parked}, position 2`);
    expect(unknown).toMatchObject({ code: 1, stderr: expect.stringContaining("unknown message") });
  });

  it("lists, retries and purges dead letters", async () => {
    const first = await deadLetter();
    const listed = json<{ total: number; entries: Record<string, unknown>[] }>(
      await cli(["dlq", "ls", ids.fragile, "--json"]),
    );
    expect(listed.entries).toContainEqual(
      expect.objectContaining({
        id: first,
        reason: "handler-error",
        error: "Error: disk full",
        attempts: 1,
        type: "work",
      }),
    );
    const table = await cli(["dlq", "ls", ids.fragile]);
    expect(table.stdout).toMatch(
      new RegExp(`${first}\\s+work\\s+\\S+\\s+handler-error\\s+Error: disk full\\s+1\\s+\\S+ ago`),
    );

    failing = false;
    const retried = json<{ retried: { id: string }[]; notFound: string[] }>(
      await cli(["dlq", "retry", ids.fragile, first, "--json"]),
    );
    expect(retried.retried.map((r) => r.id)).toEqual([first]);
    await waitFor(
      async () => (await system.messageStatus(first)) === "completed",
      3000,
      "the retried message to run",
    );
    const missing = await cli(["dlq", "retry", ids.fragile, "no-such-id"]);
    expect(missing).toMatchObject({
      code: 1,
      stderr: expect.stringContaining("no dead letter with id no-such-id"),
    });

    // A malformed member kept as a dead letter cannot run again: skipped, not retried.
    const c = redis().client();
    await c.zadd(
      `queue:${ids.fragile}:dead`,
      Date.now(),
      JSON.stringify({ reason: "malformed", at: Date.now(), message: "not json" }),
    );
    const skipped = json<{ retried: unknown[]; skipped: { reason: string }[] }>(
      await cli(["dlq", "retry", ids.fragile, "--json"]),
    );
    expect(skipped.skipped).toContainEqual(
      expect.objectContaining({ reason: expect.stringContaining("not a message") }),
    );

    const a = await deadLetter();
    await deadLetter();
    const one = await cli(["dlq", "purge", ids.fragile, a]);
    expect(one.stdout).toMatch(/^purged 1 dead letter of/);
    expect(json(await cli(["dlq", "purge", ids.fragile, "--older-than", "1h", "--json"]))).toMatchObject({
      purged: 0,
    });
    const rest = json<{ purged: number; remaining: number }>(
      await cli(["dlq", "purge", ids.fragile, "--json"]),
    );
    expect(rest.purged).toBeGreaterThanOrEqual(2);
    expect(rest.remaining).toBe(0);
    expect((await cli(["dlq", "ls", ids.fragile])).stdout).toContain("no dead letters");
  });

  it("warns when a retried dead letter's type has no handler; not for a peer, which does not say", async () => {
    const stray = await system.ref(ids.fragile).tell("nonsense", {});
    await waitFor(
      async () => (await redis().client().zcard(`queue:${ids.fragile}:dead`)) === 1,
      5000,
      "the unknown type to be dead-lettered",
    );
    const warned = await cli(["dlq", "retry", ids.fragile, stray]);
    expect(warned.code, warned.stderr).toBe(0);
    expect(warned.stderr).toContain(
      `warning: ${ids.fragile} has no handler for type "nonsense" (it handles work)`,
    );
    await waitFor(
      async () => (await redis().client().zcard(`queue:${ids.fragile}:dead`)) === 1,
      5000,
      "it to be dead-lettered again",
    );
    const asJson = json<{ warnings: string[] }>(await cli(["dlq", "retry", ids.fragile, stray, "--json"]));
    expect(asJson.warnings).toEqual([expect.stringContaining('no handler for type "nonsense"')]);
    // A handled type: no warning.
    failing = true;
    const handled = await deadLetter();
    failing = false;
    const quiet = await cli(["dlq", "retry", ids.fragile, handled]);
    expect(quiet.code, quiet.stderr).toBe(0);
    expect(quiet.stderr).not.toContain("warning");
    await waitFor(async () => (await system.messageStatus(handled)) === "completed", 5000, "the retry");
    // A peer's status hash has no handles field: nothing is known, nothing is said.
    const c = redis().client();
    expect(await unhandledTypes(c, new Keyspace(), ids.peer, ["anything"])).toEqual({
      unhandled: [],
      handled: [],
    });
    expect(await unhandledTypes(c, new Keyspace(), ids.fragile, ["work", "nonsense", null])).toEqual({
      unhandled: ["nonsense"],
      handled: ["work"],
    });
    await cli(["dlq", "purge", ids.fragile]);
  });
});

describe("run", () => {
  it("runs a module's actors until SIGTERM, with /metrics, then marks them offline", async () => {
    const echo = uniqueId("run-echo");
    const logger = uniqueId("run-logger");
    const file = join(pkgRoot, "actors.mjs");
    writeFileSync(
      file,
      [
        `export const echo = { id: ${JSON.stringify(echo)}, handlers: { ping: (p) => ({ pong: p }) } };`,
        `export const logger = { id: ${JSON.stringify(logger)}, handlers: { log: () => undefined } };`,
        // A tree that already holds echo: echo must not be spawned twice.
        `export const tree = { kind: "supervisor", id: "tree", strategy: "one_for_one", maxRestarts: 3, withinMs: 5000, children: [echo] };`,
      ].join("\n"),
    );
    const proc = start(["run", file, "--metrics-port", "0", "--json"]);
    await proc.waitFor(() => proc.events().some((e) => e.event === "ready"), "the ready event");
    const ready = proc.events().find((e) => e.event === "ready") as {
      actors: string[];
      metrics: string;
      appId: string;
    };
    expect(ready.actors.sort()).toEqual([echo, logger].sort());
    const reply = await system
      .ref<{ ping: { payload: { n: number }; reply: unknown } }>(echo)
      .ask("ping", { n: 3 });
    expect(reply).toEqual({ pong: { n: 3 } });
    const scrape = await fetch(ready.metrics);
    expect(scrape.headers.get("content-type")).toContain("text/plain");
    const text = await scrape.text();
    expect(text).toContain(`redactor_messages_completed_total{actor="${echo}",type="ping"} 1`);
    expect(text).toContain(`redactor_actor_starts_total{actor="${logger}"} 1`);
    expect(text).toContain(`redactor_inbox_depth{app="${echo}"} 0`);
    expect(await proc.stop("SIGTERM")).toBe(0);
    expect(proc.events().at(-1)).toEqual({ event: "stopped" });
    const c = redis().client();
    expect(await c.hget(`status:${echo}`, "status")).toBe("offline");
    expect(await c.exists(`status:${ready.appId}`)).toBe(0);
  });

  it("runs the ready-made actors as they are: npx redactor run actors/echo.ts, then ask echo", async () => {
    // The actors import "redactor": in a copy of the package (this suite's build) that is itself.
    mkdirSync(join(pkgRoot, "actors"), { recursive: true });
    for (const name of ["echo.ts", "hear-fc.ts", "ground-control.ts", "logger.ts"]) {
      copyFileSync(join(root, "actors", name), join(pkgRoot, "actors", name));
    }
    const echo = start(["run", "actors/echo.ts", "--json"], { cwd: pkgRoot });
    await echo.waitFor(() => echo.events().some((e) => e.event === "ready"), "echo to run");
    expect(echo.events().find((e) => e.event === "ready")).toMatchObject({ actors: ["echo"] });
    // docs/CLI.md's example, verbatim.
    const echoed = await cli(["ask", "echo", "echo", '{"hello": 1}']);
    expect(echoed.code, echoed.stderr).toBe(0);
    expect(echoed.stdout).toBe('{\n  "hello": 1\n}\n');
    expect(echoed.stderr).toMatch(/^reply from echo in [\d.]+ ms$/m);
    const ponged = json<{ pong: boolean; timestamp: number }>(await cli(["ask", "echo", "ping", "{}"]));
    expect(ponged.pong).toBe(true);
    expect(Math.abs(ponged.timestamp * 1000 - Date.now())).toBeLessThan(60_000);
    expect(await echo.stop("SIGTERM")).toBe(0);
    // The others run too, each under its default app id.
    const others = [
      ["actors/hear-fc.ts", "HEAR_FC"],
      ["actors/ground-control.ts", "petal-app-manager"],
      ["actors/logger.ts", "logger"],
    ] as const;
    const runs = others.map(([file]) => start(["run", file, "--json"], { cwd: pkgRoot }));
    try {
      for (const [i, [, id]] of others.entries()) {
        const proc = runs[i] as ReturnType<typeof start>;
        await proc.waitFor(() => proc.events().some((e) => e.event === "ready"), `${id} to run`);
        expect(proc.events().find((e) => e.event === "ready")).toMatchObject({ actors: [id] });
      }
      const health = json<{ status: string }>(await cli(["ask", "HEAR_FC", "health_check", "{}"]));
      expect(health).toMatchObject({ status: expect.any(String) });
    } finally {
      expect(await Promise.all(runs.map((r) => r.stop("SIGTERM")))).toEqual([0, 0, 0]);
    }
  });

  it("fails clearly on a module without actors (1) or a missing export (2)", async () => {
    const file = join(pkgRoot, "empty.mjs");
    writeFileSync(file, "export const answer = 42;\n");
    const [empty, missing, absent] = await Promise.all([
      cli(["run", file]),
      cli(["run", file, "--export", "nope"]),
      cli(["run", join(pkgRoot, "absent.mjs")]),
    ]);
    expect(empty).toMatchObject({ code: 1, stderr: expect.stringContaining("exports no actor definition") });
    expect(missing).toMatchObject({ code: 2, stderr: expect.stringContaining('no export "nope"') });
    expect(absent).toMatchObject({ code: 1, stderr: expect.stringContaining("no such module") });
  });
});
