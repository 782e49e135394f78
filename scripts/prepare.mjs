#!/usr/bin/env node
/**
 * npm's `prepare` script: it runs after `npm ci` or `npm install` in a checkout, and when npm
 * installs this repository as a git or directory dependency. It builds dist/ (`npm run build`)
 * when dist/ is missing or incomplete, so a fresh clone is a working package right after
 * `npm ci`: `import "redactor"` / `require("redactor")` from a project that installed the
 * checkout (`npm install ../redactor`), and the `redactor` command of such a project.
 *
 * A complete dist/ is left as it is, so that `npm ci` again, and the first `npx redactor` in the
 * checkout (npm links the checkout into its npx cache, which runs `prepare`), stay fast:
 * `npm run build` rebuilds after the source changed, and `npm pack` always builds afresh
 * (`prepack`). In the checkout itself `npx redactor` runs the TypeScript source, not dist/
 * (bin/redactor.js).
 *
 * Usage: node scripts/prepare.mjs
 */
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
/** What `npm run build` writes last in each of its steps. */
const outputs = ["dist/index.js", "dist/cli/main.js", "dist/lua/send.lua", "dist/cjs/index.js"];
const missing = outputs.filter((file) => !existsSync(join(root, file)));

if (missing.length === 0) {
  console.log('prepare: dist/ is built; "npm run build" rebuilds it after the source changed');
} else {
  if (!existsSync(join(root, "node_modules", "typescript"))) {
    // E.g. `npm install ../redactor` from a project, of a checkout where `npm ci` never ran.
    console.error(
      `prepare: ${root} has no dist/ and cannot build it: its dev dependencies (TypeScript) are not ` +
        `installed. Run "npm ci" there first (it builds dist/), or install the tarball that "npm pack" makes there`,
    );
    process.exit(1);
  }
  console.log(`prepare: building dist/ (${missing.join(", ")} missing)`);
  // npm sets npm_execpath to its own CLI; run the same npm, with the node running this script.
  const npm = process.env.npm_execpath;
  const result = npm
    ? spawnSync(process.execPath, [npm, "run", "build"], { cwd: root, stdio: "inherit" })
    : spawnSync("npm", ["run", "build"], {
        cwd: root,
        stdio: "inherit",
        shell: process.platform === "win32",
      });
  if (result.error) {
    console.error(`prepare: could not run "npm run build": ${result.error.message}`);
    process.exit(1);
  }
  process.exit(result.status ?? 1);
}
