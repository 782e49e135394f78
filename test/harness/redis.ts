/**
 * Throw-away redis-server processes for tests: each on a free loopback port, with no
 * persistence unless asked, in its own temporary directory, stopped when the suite ends.
 * The server itself lives in `redis-server.ts` (no vitest there, so benchmarks can use it).
 */
import { afterAll, beforeAll } from "vitest";
import { startRedis, type TestRedis, type TestRedisOptions } from "./redis-server.js";

export { freePort, startRedis, type TestRedis, type TestRedisOptions, uniqueId } from "./redis-server.js";

/** Starts a server before the suite's tests and stops it after them. */
export function useRedis(options: TestRedisOptions = {}): () => TestRedis {
  let server: TestRedis | undefined;
  beforeAll(async () => {
    server = await startRedis(options);
  });
  afterAll(async () => {
    await server?.stop();
  });
  return () => {
    if (!server)
      throw new Error("useRedis(): the server is started in beforeAll; call the getter inside a test");
    return server;
  };
}
