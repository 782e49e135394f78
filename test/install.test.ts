/**
 * Installing redactor as a user does. `npm pack` (which builds first) makes the tarball; it is
 * installed into a fresh CommonJS project (what `npm init -y` writes) and a fresh ES module
 * project, where a program require()s / imports redactor and does a tell and an ask with an echo
 * actor against a throw-away redis-server, `npx redactor --help` works, the CommonJS project
 * type-checks with `module: node16`, and `redactor run` serves a TypeScript module of the
 * CommonJS project. Last, `npx redactor --help` at the repository root: a fresh clone after
 * `npm ci` (the bin runs the TypeScript source there, so it works in a checkout with no dist/ too).
 *
 * Installs try `--offline` first (the dependencies' tarballs are in npm's cache after `npm ci`)
 * and go to the registry for what the cache lacks.
 */
import { type ChildProcess, spawn } from "node:child_process";
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { uniqueId, useRedis } from "./harness/redis.js";
import { waitFor } from "./harness/system.js";

const root = fileURLToPath(new URL("..", import.meta.url));
const work = mkdtempSync(join(tmpdir(), "redactor-install-"));
const pkg = JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as { version: string };
const tsxVersion = (
  JSON.parse(readFileSync(join(root, "node_modules", "tsx", "package.json"), "utf8")) as { version: string }
).version;

const redis = useRedis();

interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a command (npm, npx, node …) in `cwd` to completion, killed after `timeoutMs`. */
function exec(
  command: string,
  args: readonly string[],
  cwd: string,
  env: NodeJS.ProcessEnv = {},
  timeoutMs = 60_000,
): Promise<Result> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      cwd,
      // No stdin: npx must not wait for a prompt. REDIS_CLUSTER emptied: set, it would win over REDIS_URL.
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, REDIS_CLUSTER: "", REDACTOR_LOG_LEVEL: "silent", ...env },
    });
    let stdout = "";
    let stderr = "";
    child.stdout?.on("data", (d) => {
      stdout += d;
    });
    child.stderr?.on("data", (d) => {
      stderr += d;
    });
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    child.on("error", reject);
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

function ok(r: Result, what: string): Result {
  expect(r.code, `${what}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`).toBe(0);
  return r;
}

/** `npm install` of `specs` into `dir`: from npm's cache when it has everything, else the registry. */
async function npmInstall(dir: string, specs: readonly string[]): Promise<void> {
  const args = ["install", "--no-audit", "--no-fund", "--no-save", ...specs];
  const offline = await exec("npm", [...args, "--offline"], dir);
  if (offline.code === 0) return;
  ok(await exec("npm", [...args, "--prefer-offline"], dir, {}, 120_000), `npm install in ${dir}`);
}

/** A new project as `npm init -y` writes it (CommonJS), or with "type": "module". */
function project(name: string, type: "commonjs" | "module"): string {
  const dir = join(work, name);
  mkdirSync(dir);
  writeFileSync(
    join(dir, "package.json"),
    `${JSON.stringify({ name, version: "1.0.0", private: true, type }, null, 2)}\n`,
  );
  return dir;
}

/** The program both projects run: a tell and an ask to an echo actor, then a clean shutdown. */
function program(load: string, appId: string, actorId: string): string {
  return `${load}
async function roundTrip() {
  const system = await createSystem({ redis: process.env.REDIS_URL, appId: ${JSON.stringify(appId)} });
  try {
    let noted;
    const note = new Promise((resolve) => { noted = resolve; });
    await system.spawn(defineActor({
      id: ${JSON.stringify(actorId)},
      handlers: { note: (payload) => noted(payload), echo: (payload) => payload },
    }));
    const ref = system.ref(${JSON.stringify(actorId)});
    await ref.tell("note", { n: 1 });
    console.log("told " + JSON.stringify(await note));
    console.log("asked " + JSON.stringify(await ref.ask("echo", { hello: "world" }, { timeoutMs: 10000 })));
  } finally {
    await system.shutdown();
  }
}
`;
}

let tarball: string;

beforeAll(async () => {
  // `npm pack` runs `prepack` (a clean build of dist/) and `prepare` before packing.
  const packed = ok(await exec("npm", ["pack", "--pack-destination", work], root, {}, 120_000), "npm pack");
  const file = readdirSync(work).find((f) => f === `redactor-${pkg.version}.tgz`);
  expect(file, packed.stdout).toBeDefined();
  tarball = join(work, file as string);
}, 150_000);

afterAll(() => {
  rmSync(work, { recursive: true, force: true });
});

describe("the packed tarball", { timeout: 90_000 }, () => {
  it("holds the build: ES modules, the CommonJS entry, the Lua scripts and the bin", async () => {
    const listed = ok(await exec("tar", ["-tzf", tarball], work), "tar -tzf");
    const files = new Set(listed.stdout.split("\n").map((l) => l.replace(/^package\//, "")));
    for (const f of [
      "bin/redactor.js",
      "dist/index.js",
      "dist/index.d.ts",
      "dist/cjs/index.js",
      "dist/cjs/index.d.ts",
      "dist/cjs/package.json",
      "dist/cli/main.js",
      "dist/lua/send.lua",
      "dist/heartbeat-thread.mjs",
    ]) {
      expect(files.has(f), `${f} in the tarball`).toBe(true);
    }
  });
});

describe("a CommonJS project (npm init -y)", { timeout: 90_000 }, () => {
  let dir: string;
  const actorId = uniqueId("echo-cjs");

  beforeAll(async () => {
    dir = project("consumer-cjs", "commonjs");
    await npmInstall(dir, [tarball, `tsx@${tsxVersion}`]);
  }, 150_000);

  it("require()s redactor and does a tell and an ask", async () => {
    writeFileSync(
      join(dir, "main.js"),
      `${program('const { createSystem, defineActor } = require("redactor");', uniqueId("cjs"), actorId)}
roundTrip().then(() => process.exit(0), (err) => { console.error(err); process.exit(1); });
`,
    );
    const r = ok(await exec("node", ["main.js"], dir, { REDIS_URL: redis().url }), "node main.js");
    expect(r.stdout).toContain('told {"n":1}');
    expect(r.stdout).toContain('asked {"hello":"world"}');
  });

  it("gets the same module instances from require() as from import()", async () => {
    const r = ok(
      await exec(
        "node",
        [
          "-e",
          'import("redactor").then((m) => console.log(m.createSystem === require("redactor").createSystem))',
        ],
        dir,
      ),
      "require vs import",
    );
    expect(r.stdout.trim()).toBe("true");
  });

  it("type-checks as CommonJS with module node16", async () => {
    writeFileSync(
      join(dir, "check.ts"),
      `import { AskTimeoutError, createSystem, defineActor } from "redactor";
export const echo = defineActor<{ echo: { payload: { a: number }; reply: { a: number } } }>({
  id: "echo",
  handlers: { echo: (p) => p },
});
export const start = () => createSystem({ appId: "check" });
export const isTimeout = (e: unknown) => e instanceof AskTimeoutError;
`,
    );
    writeFileSync(
      join(dir, "tsconfig.json"),
      JSON.stringify({
        compilerOptions: {
          module: "node16",
          moduleResolution: "node16",
          strict: true,
          noEmit: true,
          skipLibCheck: true,
          typeRoots: [join(root, "node_modules", "@types")],
          types: ["node"],
        },
        files: ["check.ts"],
      }),
    );
    const tsc = join(root, "node_modules", "typescript", "bin", "tsc");
    ok(await exec("node", [tsc, "-p", "tsconfig.json"], dir), "tsc");
  });

  it("runs `npx redactor --help`", async () => {
    const r = ok(await exec("npx", ["redactor", "--help"], dir), "npx redactor --help");
    expect(r.stdout).toContain("Usage: redactor <command>");
  });

  it("serves a TypeScript module of the project with `redactor run`", async () => {
    writeFileSync(
      join(dir, "actors.ts"),
      `import { defineActor } from "redactor";
type Echo = { echo: { payload: Record<string, unknown>; reply: Record<string, unknown> } };
export default defineActor<Echo>({ id: ${JSON.stringify(`${actorId}-run`)}, handlers: { echo: (p) => p } });
`,
    );
    const env = { ...process.env, REDIS_URL: redis().url, REDIS_CLUSTER: "", REDACTOR_LOG_LEVEL: "error" };
    const bin = join(dir, "node_modules", ".bin", "redactor");
    const child: ChildProcess = spawn(bin, ["run", "actors.ts", "--json"], { cwd: dir, env });
    let stdout = "";
    let stderr = "";
    child.stdout?.on("data", (d) => {
      stdout += d;
    });
    child.stderr?.on("data", (d) => {
      stderr += d;
    });
    const exited = new Promise<number | null>((resolve) => child.on("close", resolve));
    try {
      await waitFor(
        () => stdout.includes('"event":"ready"'),
        20_000,
        `redactor run ready; stderr: ${stderr}`,
      );
      const asked = ok(
        await exec(bin, ["ask", `${actorId}-run`, "echo", '{"via":"run"}', "--json"], dir, {
          REDIS_URL: redis().url,
        }),
        "redactor ask",
      );
      expect(asked.stdout).toContain('"via"');
    } finally {
      child.kill("SIGINT");
    }
    expect(await exited, stderr).toBe(0);
  });
});

describe("an ES module project", { timeout: 90_000 }, () => {
  let dir: string;

  beforeAll(async () => {
    dir = project("consumer-esm", "module");
    await npmInstall(dir, [tarball]);
  }, 150_000);

  it("imports redactor and does a tell and an ask", async () => {
    writeFileSync(
      join(dir, "main.js"),
      `${program('import { createSystem, defineActor } from "redactor";', uniqueId("esm"), uniqueId("echo-esm"))}
await roundTrip();
`,
    );
    const r = ok(await exec("node", ["main.js"], dir, { REDIS_URL: redis().url }), "node main.js");
    expect(r.stdout).toContain('told {"n":1}');
    expect(r.stdout).toContain('asked {"hello":"world"}');
  });

  it("runs `npx redactor --help`", async () => {
    const r = ok(await exec("npx", ["redactor", "--help"], dir), "npx redactor --help");
    expect(r.stdout).toContain("Usage: redactor <command>");
  });
});

describe("the repository itself (a fresh clone after npm ci)", { timeout: 90_000 }, () => {
  // A cache of its own for each npx: npx links the checkout into <cache>/_npx, and an entry left
  // there by an older checkout of the same path (whose bin was dist/cli/main.js, absent before a
  // build, so npm linked no bin) would be reused as it is.
  const npx = (args: readonly string[], cwd: string, cache: string, env: NodeJS.ProcessEnv = {}) =>
    exec("npx", ["--offline", ...args], cwd, { npm_config_cache: join(work, cache), ...env });

  it("names a bin that is in the repository, not a build output", () => {
    const bin = (
      JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as { bin: Record<string, string> }
    ).bin.redactor as string;
    expect(bin.startsWith("./dist/") || bin.startsWith("dist/"), bin).toBe(false);
    expect(existsSync(join(root, bin)), bin).toBe(true);
  });

  it("runs `npx redactor --help` and `--version` at the root", async () => {
    const help = ok(await npx(["redactor", "--help"], root, "npm-cache-root"), "npx redactor --help");
    expect(help.stdout).toContain("Usage: redactor <command>");
    const version = ok(
      await npx(["redactor", "--version"], root, "npm-cache-root"),
      "npx redactor --version",
    );
    expect(version.stdout.trim()).toBe(pkg.version);
  });

  it("runs `npx redactor --help` in a checkout that has no dist/ (the TypeScript source, through tsx)", async () => {
    // The repository's files without dist/: copies of what npx reads, links to the rest. With
    // --ignore-scripts npm does not build it when it links it into its cache (`prepare`).
    const checkout = join(work, "checkout");
    mkdirSync(join(checkout, "bin"), { recursive: true });
    for (const f of ["package.json", "tsconfig.json", "bin/redactor.js"]) {
      copyFileSync(join(root, f), join(checkout, f));
    }
    for (const d of ["src", "scripts", "node_modules"]) symlinkSync(join(root, d), join(checkout, d), "dir");
    const help = ok(
      await npx(["redactor", "--help"], checkout, "npm-cache-checkout", {
        npm_config_ignore_scripts: "true",
      }),
      "npx redactor --help without dist/",
    );
    expect(help.stdout).toContain("Usage: redactor <command>");
    expect(existsSync(join(checkout, "dist"))).toBe(false);
  });
});
