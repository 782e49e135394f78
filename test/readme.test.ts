/**
 * The README's quick start runs as written: its code block is examples/quickstart.ts byte for
 * byte, and that file runs to completion against a throw-away Redis.
 */
import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { useRedis } from "./harness/redis.js";

const root = fileURLToPath(new URL("..", import.meta.url));
const read = (path: string) => readFileSync(new URL(`../${path}`, import.meta.url), "utf8");

/** The first ```ts block of the README section whose heading is `## Quick start`. */
function quickStartBlock(readme: string): string {
  const start = readme.indexOf("\n## Quick start\n");
  if (start < 0) throw new Error('README.md has no "## Quick start" section');
  const end = readme.indexOf("\n## ", start + 1);
  const section = readme.slice(start, end < 0 ? undefined : end);
  const block = /\n```ts\n([\s\S]*?)\n```\n/.exec(section);
  if (!block?.[1]) throw new Error("the Quick start section has no ```ts code block");
  return `${block[1]}\n`;
}

function run(
  command: string,
  args: string[],
  env: NodeJS.ProcessEnv,
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(command, args, { cwd: root, env, timeout: 60_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === "number" ? err.code : 1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

describe("README quick start", () => {
  const redis = useRedis();

  it("is examples/quickstart.ts, identical", () => {
    expect(quickStartBlock(read("README.md"))).toBe(read("examples/quickstart.ts"));
  });

  it("runs as written and prints what the README says", async () => {
    const result = await run("npx", ["tsx", "examples/quickstart.ts"], {
      ...process.env,
      REDIS_URL: redis().url,
    });
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toBe(
      [
        "greeter got a note: tell does not wait",
        "hello, Ada (notes so far: 1)",
        "status of the note: completed",
        "",
      ].join("\n"),
    );
    // It finds its Redis as the other examples do (examples/support/redis.ts), and says which.
    expect(result.stderr).toContain(`Redis: Redis at ${redis().url} (REDIS_URL)`);
    const readme = read("README.md");
    for (const line of result.stdout.trim().split("\n")) expect(readme).toContain(line);
  });
});
