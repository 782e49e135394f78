import { fileURLToPath } from "node:url";
import { defineConfig } from "vitest/config";

export default defineConfig({
  resolve: { alias: { redactor: fileURLToPath(new URL("./src/index.ts", import.meta.url)) } },
  test: {
    include: ["test/**/*.test.ts"],
    testTimeout: 30_000,
    // Most of a test's time is spent waiting on Redis and child processes, not on a core: two
    // files at a time on a 2-core machine (vitest's default there is one).
    maxWorkers: 2,
    hookTimeout: 30_000,
  },
});
