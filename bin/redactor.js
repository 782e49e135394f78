#!/usr/bin/env node
/**
 * The `redactor` command (package.json "bin"; see docs/CLI.md).
 *
 * An installed package (from `npm pack`'s tarball, a registry or a git dependency) runs the
 * compiled CLI in dist/. A checkout of the repository (it has tsconfig.json and the TypeScript
 * source, which a tarball does not ship together) runs src/cli/main.ts through tsx, a dev
 * dependency, so `npx redactor …` works right after `npm ci` and always runs the source as it is
 * now, not the last build. A checkout without tsx (`npm ci --omit=dev`) runs dist/ when built.
 *
 * Plain JavaScript on purpose: it must run before anything is compiled.
 */
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";

const root = new URL("../", import.meta.url);
const source = new URL("src/cli/main.ts", root);
const built = new URL("dist/cli/main.js", root);

/** tsx's ESM loader API when tsx is installed next to this package, else undefined. */
async function tsxApi() {
  try {
    return await import("tsx/esm/api");
  } catch {
    return undefined;
  }
}

/** @returns {Promise<{ runCommandLine: () => Promise<void> }>} */
async function loadCli() {
  const checkout = existsSync(new URL("tsconfig.json", root)) && existsSync(source);
  const tsx = checkout ? await tsxApi() : undefined;
  if (tsx !== undefined) {
    tsx.register();
    return import(source.href);
  }
  if (existsSync(built)) return import(built.href);
  const dir = fileURLToPath(root);
  process.stderr.write(
    `redactor: ${fileURLToPath(built)} does not exist: this copy of redactor is not built. ` +
      `Run "npm ci" (which builds it) or "npm run build" in ${dir}, ` +
      `or install redactor from the tarball that "npm pack" makes there\n`,
  );
  process.exit(1);
}

const cli = await loadCli();
await cli.runCommandLine();
