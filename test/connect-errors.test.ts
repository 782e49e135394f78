/**
 * Connection failures say what is wrong and what to do, with a typed error whose `cause` is
 * ioredis' own: a wrong password (WRONGPASS), no password (NOAUTH), an untrusted TLS certificate,
 * a server at its maxclients limit, a database index out of range, a user without a permission
 * redactor needs. A createSystem that fails leaves no connection (CLIENT LIST) and nothing that
 * keeps the process alive. Options are checked before anything connects. The CLI says the same.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createServer as createTlsServer, type Server as TlsServer } from "node:tls";
import { fileURLToPath } from "node:url";
import { Redis } from "ioredis";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { main } from "../src/cli/main.js";
import {
  createSystem,
  defineActor,
  InvalidIdError,
  InvalidOptionError,
  RedisAuthError,
  RedisDatabaseError,
  RedisMaxClientsError,
  RedisTlsError,
  RedisUnavailableError,
  type SystemOptions,
} from "../src/index.js";
import { freePort, startRedis, type TestRedis, uniqueId, useRedis } from "./harness/redis.js";
import { runScript, waitFor } from "./harness/system.js";

const PASSWORD = "s3cret-pw";
const redis = useRedis();
const silent = pino({ level: "silent" });
let admin: Redis;

/** The suite's server, with a password from the first test on (the admin connection stays authenticated). */
function url(auth = `:${PASSWORD}@`, db = ""): string {
  return `redis://${auth}127.0.0.1:${redis().port}${db}`;
}

beforeAll(async () => {
  admin = redis().client();
  await admin.config("SET", "requirepass", PASSWORD);
});

afterAll(async () => {
  await admin.config("SET", "requirepass", "").catch(() => {});
});

async function failure(options: Partial<SystemOptions>): Promise<Error> {
  const result = await createSystem({ appId: uniqueId("conn"), logger: silent, ...options }).then(
    async (system) => {
      await system.shutdown();
      return new Error("createSystem succeeded");
    },
    (err: unknown) => err as Error,
  );
  return result;
}

/** Names of the server's client connections made by redactor for `app`. */
async function connectionsOf(app: string): Promise<string[]> {
  const list = (await admin.client("LIST")) as string;
  return list
    .split("\n")
    .map((line) => /name=(\S*)/.exec(line)?.[1] ?? "")
    .filter((name) => name === `redactor:${app}` || name === `redactor:${app}:sub`);
}

/** Waits (briefly: a closed socket takes a moment to leave CLIENT LIST) until `app` has no connection. */
async function noConnectionsOf(app: string): Promise<void> {
  await waitFor(async () => (await connectionsOf(app)).length === 0, 2000, `${app}'s connections to close`);
}

async function cli(args: string[]): Promise<{ code: number; err: string }> {
  let err = "";
  const code = await main(args, {
    out: () => {},
    err: (t) => {
      err += `${t}\n`;
    },
  });
  return { code, err };
}

describe("credentials", () => {
  it("says the password is wrong (WRONGPASS), with ioredis' error as cause", async () => {
    const error = await failure({ redis: url(":wrong@") });
    expect(error).toBeInstanceOf(RedisAuthError);
    expect(error).toBeInstanceOf(RedisUnavailableError);
    expect(error.message).toMatch(
      /rejected the user name or password \(WRONGPASS\); check them in the Redis URL/,
    );
    expect(error.message).not.toContain("wrong@"); // the password is not shown
    expect((error.cause as Error).message).toMatch(/^WRONGPASS/);
  });

  it("says a password is needed (NOAUTH)", async () => {
    const error = await failure({ redis: url("") });
    expect(error).toBeInstanceOf(RedisAuthError);
    expect(error.message).toMatch(
      /requires a password and none was given \(NOAUTH\); put it in the Redis URL/,
    );
    expect((error.cause as Error).message).toMatch(/NOAUTH/);
  });

  it("connects with the right password", async () => {
    const system = await createSystem({ appId: uniqueId("conn"), logger: silent, redis: url() });
    await system.shutdown();
  });

  it("says which permission a user lacks (NOPERM), and leaves no connection when start fails after both connected", async () => {
    const user = uniqueId("noscript");
    await admin.call("ACL", "SETUSER", user, "on", ">pw", "~*", "&*", "+@all", "-script");
    const app = uniqueId("conn");
    const error = await failure({ appId: app, redis: url(`${user}:pw@`) });
    expect(error).toBeInstanceOf(RedisAuthError);
    expect(error.message).toMatch(/may not run a command redactor needs .*NOPERM/);
    await noConnectionsOf(app);
  });

  it("reports the same in the CLI (exit 1)", async () => {
    const wrong = await cli(["ls", "--redis", url(":wrong@")]);
    expect(wrong.code).toBe(1);
    expect(wrong.err).toMatch(/WRONGPASS/);
    const none = await cli(["ls", "--redis", url("")]);
    expect(none.code).toBe(1);
    expect(none.err).toMatch(/NOAUTH/);
    const right = await cli(["ls", "--redis", url()]);
    expect(right.code).toBe(0);
  });
});

describe("database index", () => {
  it("refuses an index the server does not have, instead of using database 0", async () => {
    const app = uniqueId("conn");
    const error = await failure({ appId: app, redis: url(undefined, "/99") });
    expect(error).toBeInstanceOf(RedisDatabaseError);
    expect(error.message).toMatch(
      /has no database 99 \(ERR DB index is out of range\); it has 16, numbered 0 to 15/,
    );
    await noConnectionsOf(app);
    const viaCli = await cli(["ls", "--redis", url(undefined, "/99")]);
    expect(viaCli.code).toBe(1);
    expect(viaCli.err).toMatch(/has no database 99/);
  });

  it("uses the index it is given", async () => {
    const app = uniqueId("db3");
    const system = await createSystem({
      appId: uniqueId("conn"),
      logger: silent,
      redis: url(undefined, "/3"),
    });
    try {
      const seen: number[] = [];
      await system.spawn(
        defineActor<{ n: { payload: { n: number } } }>({
          id: app,
          handlers: { n: (p) => void seen.push(p.n) },
        }),
      );
      await system.ref<{ n: { payload: { n: number } } }>(app).tell("n", { n: 1 });
      await waitFor(() => seen.length === 1, 5000, "the message in database 3");
      const db3 = new Redis({ port: redis().port, password: PASSWORD, db: 3 });
      expect(await db3.exists(`status:${app}`)).toBe(1);
      db3.disconnect();
      expect(await admin.exists(`status:${app}`)).toBe(0); // admin is on database 0
    } finally {
      await system.shutdown();
    }
  });
});

describe("maxclients", () => {
  async function withMaxClients<T>(extra: number, run: () => Promise<T>): Promise<T> {
    const info = await admin.info("clients");
    const connected = Number(/connected_clients:(\d+)/.exec(info)?.[1]);
    await admin.config("SET", "maxclients", String(connected + extra));
    try {
      return await run();
    } finally {
      await admin.config("SET", "maxclients", "10000");
    }
  }

  it("says the server is full when the first connection is refused", async () => {
    const error = await withMaxClients(0, () => failure({ redis: url() }));
    expect(error).toBeInstanceOf(RedisMaxClientsError);
    expect(error.message).toMatch(/reached its maxclients limit .*raise maxclients/);
  });

  it("says so too when only the second connection is refused, and closes the first", async () => {
    const app = uniqueId("conn");
    const error = await withMaxClients(1, () => failure({ appId: app, redis: url() }));
    expect(error).toBeInstanceOf(RedisMaxClientsError);
    await noConnectionsOf(app);
  });

  it("reports the same in the CLI", async () => {
    const viaCli = await withMaxClients(0, () => cli(["ls", "--redis", url()]));
    expect(viaCli.code).toBe(1);
    expect(viaCli.err).toMatch(/maxclients/);
  });
});

describe("nothing left behind", () => {
  const fixture = fileURLToPath(new URL("./fixtures/connect-fails.ts", import.meta.url));

  /** Runs the fixture; resolves with its output once it exits by itself. */
  function runFixture(
    env: Record<string, string>,
  ): Promise<{ code: number | null; out: string; ms: number }> {
    return runScript(fixture, { env });
  }

  it("lets the process exit by itself after each kind of failure", async () => {
    const user = uniqueId("noscript");
    await admin.call("ACL", "SETUSER", user, "on", ">pw", "~*", "&*", "+@all", "-script");
    const cases: [string, string, RegExp][] = [
      ["wrong password", url(":wrong@"), /RedisAuthError/],
      ["database out of range", url(undefined, "/99"), /RedisDatabaseError/],
      ["start fails after both connections", url(`${user}:pw@`), /RedisAuthError: .*NOPERM/],
    ];
    const results = await Promise.all(cases.map(([, redisUrl]) => runFixture({ REDIS_URL: redisUrl })));
    for (const [i, [what, , expected]] of cases.entries()) {
      const r = results[i];
      expect(r?.out, what).toMatch(expected);
      // Killed at 30 s otherwise (code null): a reconnect timer or socket would keep it alive.
      expect(r?.code, `${what}: ${r?.out}`).toBe(0);
    }
  });

  it("lets the process exit when only the second connection is refused", async () => {
    const info = await admin.info("clients");
    const connected = Number(/connected_clients:(\d+)/.exec(info)?.[1]);
    // The fixture's first connection fits, its second does not.
    await admin.config("SET", "maxclients", String(connected + 1));
    try {
      const r = await runFixture({ REDIS_URL: url() });
      expect(r.out).toMatch(/RedisMaxClientsError/);
      expect(r.code).toBe(0);
    } finally {
      await admin.config("SET", "maxclients", "10000");
    }
  });
});

describe("TLS", () => {
  let dir = "";
  let server: TestRedis | undefined;
  let nodeTls: TlsServer | undefined;
  let tlsPort = 0;
  let cert = "";

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "redactor-tls-"));
    execFileSync(
      "openssl",
      [
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        join(dir, "key.pem"),
        "-out",
        join(dir, "cert.pem"),
        "-days",
        "2",
        "-subj",
        "/CN=localhost",
        "-addext",
        "subjectAltName=DNS:localhost,IP:127.0.0.1",
      ],
      { stdio: "ignore" },
    );
    cert = readFileSync(join(dir, "cert.pem"), "utf8");
    tlsPort = await freePort();
    try {
      server = await startRedis({
        args: [
          "--tls-port",
          String(tlsPort),
          "--tls-cert-file",
          join(dir, "cert.pem"),
          "--tls-key-file",
          join(dir, "key.pem"),
          "--tls-auth-clients",
          "no",
        ],
      });
    } catch {
      // redis-server built without TLS: a plain TLS server presents the same certificate.
      nodeTls = createTlsServer({ key: readFileSync(join(dir, "key.pem")), cert }, (socket) => socket.end());
      await new Promise<void>((r) => nodeTls?.listen(tlsPort, "127.0.0.1", r));
    }
  });

  afterAll(async () => {
    await server?.stop();
    nodeTls?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("says the certificate is not trusted and how to trust it", async () => {
    const error = await failure({ redis: `rediss://127.0.0.1:${tlsPort}` });
    expect(error).toBeInstanceOf(RedisTlsError);
    expect(error.message).toMatch(
      /TLS certificate of Redis at rediss:\/\/127\.0\.0\.1:\d+ is not trusted \(DEPTH_ZERO_SELF_SIGNED_CERT/,
    );
    expect(error.message).toMatch(/tls: \{ ca/);
    expect((error.cause as NodeJS.ErrnoException).code).toBe("DEPTH_ZERO_SELF_SIGNED_CERT");
    const viaCli = await cli(["ls", "--redis", `rediss://127.0.0.1:${tlsPort}`]);
    expect(viaCli.code).toBe(1);
    expect(viaCli.err).toMatch(/not trusted/);
  });

  it("connects once given the CA", async (ctx) => {
    if (!server) ctx.skip();
    const system = await createSystem({
      appId: uniqueId("tls"),
      logger: silent,
      redis: { host: "127.0.0.1", port: tlsPort, tls: { ca: cert } },
    });
    await system.shutdown();
  });
});

describe("options", () => {
  const base = { appId: "opts", logger: silent };

  it.each([
    ["heartbeatMs", 0],
    ["heartbeatMs", -1],
    ["heartbeatMs", Number.NaN],
    ["heartbeatMs", "2000"],
    ["sweepMs", 0],
    ["sweepMs", Number.POSITIVE_INFINITY],
    ["claimBatch", 0],
    ["claimBatch", 2.5],
    ["leaseMs", 0],
    ["leaseMs", 1.5],
    ["askTimeoutMs", 0],
    ["askTimeoutMs", 2 ** 31],
    ["shutdownTimeoutMs", -1],
    ["maxMessageBytes", 0],
    ["messageTtlSeconds", 0],
    ["messageTtlSeconds", 0.5],
    ["outboxCap", -1],
    ["whenDisconnected", "drop"],
    ["keyspaceEvents", "yes"],
    ["handleSignals", 1],
    ["keyspace", "hashTag"],
    ["rootIntensity", { maxRestarts: -1, withinMs: 1000 }],
    ["rootIntensity", { maxRestarts: 1, withinMs: 0 }],
    ["redis", "localhost:6379"],
    ["redis", 6379],
  ])("refuses %s = %j before connecting, naming the option and its range", async (option, value) => {
    // Nothing listens there: a connection attempt would fail with RedisUnavailableError.
    const port = await freePort();
    const error = await failure({ ...base, redis: `redis://127.0.0.1:${port}`, [option]: value });
    expect(error).toBeInstanceOf(InvalidOptionError);
    expect(error.message).toContain(option);
    expect((error as InvalidOptionError).option).toMatch(new RegExp(`^${option}`));
  });

  it.each([
    [{ cluster: { nodes: [] } }, "cluster.nodes", /at least one node/],
    [{ cluster: { nodes: [7000, null] } }, "cluster.nodes", /is not a node/],
    [{ cluster: { nodes: ["not a url at all"] } }, "cluster.nodes", /is not a URL/],
    [{ cluster: { nodes: ["http://127.0.0.1:7000"] } }, "cluster.nodes", /redis:\/\/ or rediss:\/\//],
    [{ cluster: { nodes: ["redis://127.0.0.1:7000/3"] } }, "cluster.nodes", /only database 0/],
    [{ cluster: { nodes: [{ host: "127.0.0.1", port: 70000 }] } }, "cluster.nodes", /port/],
    [
      { cluster: { nodes: ["redis://127.0.0.1:7000"] }, keyspace: { hashTag: false } },
      "keyspace.hashTag",
      /hash-tagged/,
    ],
    [
      { cluster: { nodes: ["redis://127.0.0.1:7000"] }, redis: "redis://127.0.0.1:6379" },
      "cluster",
      /not both/,
    ],
  ])("refuses the cluster option %j before connecting, naming %s", async (options, option, says) => {
    const error = await failure({ ...base, ...(options as object) });
    expect(error).toBeInstanceOf(InvalidOptionError);
    expect((error as InvalidOptionError).option).toBe(option);
    expect(error.message).toMatch(says);
  });

  it("checks REDIS_CLUSTER as it checks cluster.nodes, and ignores a bad REDIS_URL when on a cluster", async () => {
    const saved = { cluster: process.env.REDIS_CLUSTER, url: process.env.REDIS_URL };
    try {
      process.env.REDIS_CLUSTER = ",,,";
      let error = await failure({ ...base });
      expect(error).toBeInstanceOf(InvalidOptionError);
      expect((error as InvalidOptionError).option).toBe("REDIS_CLUSTER");
      process.env.REDIS_CLUSTER = "redis://127.0.0.1:7000/2";
      error = await failure({ ...base });
      expect(error.message).toMatch(/only database 0/);
      process.env.REDIS_CLUSTER = `redis://127.0.0.1:${await freePort()}`;
      process.env.REDIS_URL = "";
      error = await failure({ ...base, connectTimeout: 500 } as never);
      // Not refused as an option: it tried the cluster, and says so.
      expect(error).not.toBeInstanceOf(InvalidOptionError);
      expect(error.message).toMatch(/Redis Cluster/);
    } finally {
      if (saved.cluster === undefined) delete process.env.REDIS_CLUSTER;
      else process.env.REDIS_CLUSTER = saved.cluster;
      if (saved.url === undefined) delete process.env.REDIS_URL;
      else process.env.REDIS_URL = saved.url;
    }
  });

  it("refuses a REDIS_URL that is not a Redis URL, naming REDIS_URL", async () => {
    const saved = process.env.REDIS_URL;
    process.env.REDIS_URL = "localhost:6379";
    try {
      const error = await failure({ ...base });
      expect(error).toBeInstanceOf(InvalidOptionError);
      expect(error.message).toMatch(/^invalid REDIS_URL: "localhost:6379" is not a Redis URL/);
    } finally {
      if (saved === undefined) delete process.env.REDIS_URL;
      else process.env.REDIS_URL = saved;
    }
  });

  it("refuses a missing or bad appId", async () => {
    const port = await freePort();
    const missing = await failure({ appId: undefined, redis: `redis://127.0.0.1:${port}` });
    expect(missing).toBeInstanceOf(InvalidOptionError);
    expect(missing.message).toMatch(/createSystem needs an appId/);
    const empty = await failure({ appId: "", redis: `redis://127.0.0.1:${port}` });
    expect(empty).toBeInstanceOf(InvalidIdError);
  });

  it("says what the range is", async () => {
    const error = await failure({ ...base, heartbeatMs: 0 });
    expect(error.message).toBe(
      "invalid option heartbeatMs: got 0; it must be a finite number of ms, greater than 0 and at most " +
        "2147483647 (leave it out for the default, 2000)",
    );
  });
});

describe("a server that never answers", () => {
  it("fails within connectTimeout with RedisUnavailableError instead of hanging", async () => {
    const { createServer } = await import("node:net");
    const sockets: import("node:net").Socket[] = [];
    // Accepts connections and never writes a byte, like a stopped (SIGSTOP) or paused server.
    const server = createServer((socket) => {
      sockets.push(socket);
    });
    const port = await freePort();
    await new Promise<void>((resolve) => server.listen(port, "127.0.0.1", resolve));
    const started = Date.now();
    try {
      const error = await createSystem({
        appId: uniqueId("silent"),
        redis: { host: "127.0.0.1", port, connectTimeout: 1000 },
        logger: pino({ level: "silent" }),
      }).then(
        () => undefined,
        (err: unknown) => err,
      );
      expect(error).toBeInstanceOf(RedisUnavailableError);
      expect((error as Error).message).toMatch(/did not answer within 1000 ms/);
      expect(Date.now() - started).toBeLessThan(5000);
    } finally {
      for (const socket of sockets) socket.destroy();
      await new Promise((r) => server.close(r));
    }
  });
});
