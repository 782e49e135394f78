#!/usr/bin/env node
/**
 * Copies the Lua scripts (src/lua/**\/*.lua) next to the compiled code, keeping the folder
 * layout, because src/scripts.ts reads them at run time relative to its own file and tsc only
 * emits JavaScript. Also copies the plain-JavaScript modules of src/ (src/*.mjs: the heartbeat
 * thread's entry, started by src/heartbeat.ts from the file next to it), which tsc does not emit.
 *
 * Usage: node scripts/copy-lua.mjs [outDir]   (outDir defaults to "dist", relative to the repo)
 */
import { copyFileSync, existsSync, mkdirSync, readdirSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const from = join(root, "src", "lua");
const to = join(resolve(root, process.argv[2] ?? "dist"), "lua");

/** Every .lua file under `dir`, recursively. */
function luaFiles(dir) {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return luaFiles(path);
    return entry.isFile() && entry.name.endsWith(".lua") ? [path] : [];
  });
}

if (!existsSync(from)) {
  console.error(`copy-lua: ${from} does not exist; run this from a checkout of the repository`);
  process.exit(1);
}
const files = luaFiles(from);
for (const file of files) {
  const target = join(to, relative(from, file));
  mkdirSync(dirname(target), { recursive: true });
  copyFileSync(file, target);
}
const shown = to.startsWith(root) ? relative(root, to) : to;
console.log(`copy-lua: ${files.length} Lua files copied to ${shown}`);

const srcDir = join(root, "src");
const outDir = dirname(to);
const modules = readdirSync(srcDir, { withFileTypes: true }).filter(
  (entry) => entry.isFile() && entry.name.endsWith(".mjs"),
);
for (const entry of modules) {
  mkdirSync(outDir, { recursive: true });
  copyFileSync(join(srcDir, entry.name), join(outDir, entry.name));
}
console.log(
  `copy-lua: ${modules.length} JavaScript modules copied to ${outDir.startsWith(root) ? relative(root, outDir) : outDir}`,
);

// The dashboard's static page (src/dashboard/*.html, *.js, *.css), read at run time by
// src/dashboard/server.ts from the folder next to it.
const pageDir = join(srcDir, "dashboard");
const pageFiles = existsSync(pageDir)
  ? readdirSync(pageDir, { withFileTypes: true }).filter(
      (entry) => entry.isFile() && /\.(html|js|css)$/.test(entry.name),
    )
  : [];
for (const entry of pageFiles) {
  mkdirSync(join(outDir, "dashboard"), { recursive: true });
  copyFileSync(join(pageDir, entry.name), join(outDir, "dashboard", entry.name));
}
console.log(
  `copy-lua: ${pageFiles.length} dashboard files copied to ${join(outDir.startsWith(root) ? relative(root, outDir) : outDir, "dashboard")}`,
);
