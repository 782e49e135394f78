#!/usr/bin/env node
/**
 * Writes the CommonJS entry of the package (package.json "exports" → "require") into
 * `<outDir>/cjs`, after tsc has built `<outDir>`:
 *
 * - `cjs/package.json` `{"type":"commonjs"}`, so Node and TypeScript read this folder as CommonJS;
 * - `cjs/index.js`, which is `require("../index.js")`: Node 20.19+ and 22.12+ load an ES module
 *   graph with require() (it has no top-level await), so a CommonJS program gets the very same
 *   module instances as one that imports redactor. A second compiled copy would give it other
 *   classes (an `instanceof AskTimeoutError` would fail across the two) and a second heartbeat
 *   thread; and superjson, a dependency, is ES modules only, so an older Node could not run a
 *   CommonJS copy either. On such a Node the entry says what to do instead;
 * - `cjs/**\/*.d.ts`, the declarations again, read as CommonJS from here, so a CommonJS project
 *   type-checks with any `module` setting (`node16` refuses to require() declarations that are
 *   ES modules).
 *
 * Usage: node scripts/write-cjs-entry.mjs [outDir]   (outDir defaults to "dist", relative to the repo)
 */
import { copyFileSync, existsSync, mkdirSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const out = resolve(root, process.argv[2] ?? "dist");
const cjs = join(out, "cjs");

if (!existsSync(join(out, "index.js")) || !existsSync(join(out, "index.d.ts"))) {
  console.error(
    `write-cjs-entry: ${join(out, "index.js")} or its .d.ts is missing; run tsc first (npm run build)`,
  );
  process.exit(1);
}

/** Every .d.ts file under `dir`, recursively, leaving out `skip`. */
function declarations(dir, skip) {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return path === skip ? [] : declarations(path, skip);
    return entry.isFile() && entry.name.endsWith(".d.ts") ? [path] : [];
  });
}

rmSync(cjs, { recursive: true, force: true });
mkdirSync(cjs, { recursive: true });
writeFileSync(join(cjs, "package.json"), `${JSON.stringify({ type: "commonjs" })}\n`);
writeFileSync(
  join(cjs, "index.js"),
  `"use strict";
// The CommonJS entry of redactor (written by scripts/write-cjs-entry.mjs). redactor is ES
// modules; Node 20.19+ and 22.12+ load them with require(), sharing one instance with import.
try {
  module.exports = require("../index.js");
} catch (err) {
  if (err && err.code === "ERR_REQUIRE_ESM") {
    throw new Error(
      "require(\\"redactor\\") needs Node.js 20.19+ or 22.12+, which load ES modules with require() " +
        "(this is Node.js " + process.version + "): upgrade Node.js, or load it with " +
        "\`const { createSystem } = await import(\\"redactor\\")\`",
      { cause: err },
    );
  }
  throw err;
}
`,
);
const files = declarations(out, cjs);
for (const file of files) {
  const target = join(cjs, relative(out, file));
  mkdirSync(dirname(target), { recursive: true });
  copyFileSync(file, target);
}
const shown = cjs.startsWith(root) ? relative(root, cjs) : cjs;
console.log(`write-cjs-entry: CommonJS entry and ${files.length} declaration files written to ${shown}`);
