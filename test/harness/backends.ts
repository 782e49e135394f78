/**
 * The backend matrix: one suite definition run on a single redis-server and on a Redis Cluster.
 * `describeBackends` starts the backend before the suite and stops it after; the suite reaches
 * it through a getter, as with `useRedis`. `REDACTOR_BACKENDS=server` (or `cluster`, or
 * `server,cluster`) narrows the matrix; the default is both.
 */
import type { Cluster, Redis } from "ioredis";
import { pino } from "pino";
import { afterAll, afterEach, beforeAll, describe } from "vitest";
import { type ActorSystem, createSystem, type SystemOptions } from "../../src/index.js";
import { Keyspace } from "../../src/keyspace.js";
import { startCluster, type TestCluster, type TestClusterOptions } from "./redis-cluster.js";
import { startRedis, type TestRedis, type TestRedisOptions, uniqueId } from "./redis-server.js";

/** The names of the backends. */
export type BackendName = "server" | "cluster";

const ALL_BACKENDS: readonly BackendName[] = ["server", "cluster"];

/** One backend of the matrix, started. */
export interface Backend {
  readonly name: BackendName;
  /** The createSystem options that point at this backend: `{ redis: url }` or `{ cluster: { nodes } }`. */
  systemOptions(): Pick<SystemOptions, "redis" | "cluster">;
  /** A new raw client for assertions (Redis, or ioredis Cluster); closed when the suite ends. */
  client(): Redis | Cluster;
  /** The key layout systems use here: the peers' layout on a server, the hash-tagged one on a cluster. */
  readonly keys: Keyspace;
  /** The server, for fault injection (server backend only). */
  readonly server?: TestRedis;
  /** The cluster, for fault injection (cluster backend only). */
  readonly cluster?: TestCluster;
}

/** How to start each backend of a `describeBackends` suite. */
export interface BackendOptions {
  /** Options of the single server. @default {} */
  server?: TestRedisOptions;
  /** Options of the cluster. @default {} (3 masters, 1 replica each) */
  cluster?: TestClusterOptions;
  /** Extra `redis-server` arguments for every process of either backend. @default [] */
  args?: string[];
}

/**
 * The backends a REDACTOR_BACKENDS value names (comma-separated): both when it is unset or
 * empty. Throws on an unknown name, so that a typo does not silently skip a backend.
 */
export function parseBackends(spec: string | undefined): BackendName[] {
  if (spec === undefined || spec.trim() === "") return [...ALL_BACKENDS];
  const names = spec
    .split(",")
    .map((n) => n.trim())
    .filter(Boolean);
  for (const name of names) {
    if (!(ALL_BACKENDS as readonly string[]).includes(name))
      throw new Error(`REDACTOR_BACKENDS: unknown backend "${name}" (expected ${ALL_BACKENDS.join(", ")})`);
  }
  return ALL_BACKENDS.filter((b) => names.includes(b));
}

/** Starts one backend; `stop` stops it. */
export async function startBackend(
  name: BackendName,
  options: BackendOptions = {},
): Promise<Backend & { stop(): Promise<void> }> {
  const args = options.args ?? [];
  if (name === "server") {
    const server = await startRedis({ ...options.server, args: [...args, ...(options.server?.args ?? [])] });
    return {
      name,
      server,
      keys: new Keyspace(),
      systemOptions: () => ({ redis: server.url }),
      client: () => server.client(),
      stop: () => server.stop(),
    };
  }
  const cluster = await startCluster({
    ...options.cluster,
    args: [...args, ...(options.cluster?.args ?? [])],
  });
  return {
    name,
    cluster,
    keys: new Keyspace({ hashTag: true }),
    systemOptions: () => ({ cluster: { nodes: [...cluster.startupNodes] } }),
    client: () => cluster.client(),
    stop: () => cluster.stop(),
  };
}

/**
 * Defines the suite `body` once per selected backend (`<title> [server]`, `<title> [cluster]`).
 * The backend is started in beforeAll and stopped in afterAll; `body` receives a getter to call
 * inside hooks and tests.
 */
export function describeBackends(
  title: string,
  body: (backend: () => Backend) => void,
  options: BackendOptions = {},
): void {
  for (const name of parseBackends(process.env.REDACTOR_BACKENDS)) {
    describe(`${title} [${name}]`, () => {
      let started: (Backend & { stop(): Promise<void> }) | undefined;
      beforeAll(async () => {
        started = await startBackend(name, options);
      });
      afterAll(async () => {
        await started?.stop();
      });
      body(() => {
        if (!started)
          throw new Error(
            "describeBackends(): the backend is started in beforeAll; call the getter inside a test",
          );
        return started;
      });
    });
  }
}

/**
 * Like `useSystems` (system.ts) but for a backend: returns a factory of systems on it, with a
 * fresh app id and a silent logger unless `options` say otherwise; each is shut down after its test.
 */
export function useBackendSystems(
  backend: () => Backend,
): (options?: Partial<SystemOptions>) => Promise<ActorSystem> {
  const created: ActorSystem[] = [];
  afterEach(async () => {
    await Promise.all(created.splice(0).map((s) => s.shutdown()));
  });
  return async (options = {}) => {
    const system = await createSystem({
      appId: uniqueId("sys"),
      logger: pino({ level: "silent" }),
      ...backend().systemOptions(),
      ...options,
    });
    created.push(system);
    return system;
  };
}

/**
 * Backend options for suites that need no replicas (nothing fails over): a cluster of 3 masters
 * and no replicas, half the processes of the default one.
 */
export const MASTERS_ONLY: BackendOptions = { cluster: { replicasPerMaster: 0 } };

/**
 * The environment that points a fixture process (test/fixtures/worker.ts) at `backend`:
 * `REDIS_URL` on a server, `REDIS_CLUSTER` (comma-separated node URLs) on a cluster; the other
 * one is set empty, so that a value inherited from the test run does not send it elsewhere.
 */
export function backendEnv(backend: Backend): { REDIS_URL: string; REDIS_CLUSTER: string } {
  if (backend.cluster) return { REDIS_URL: "", REDIS_CLUSTER: backend.cluster.startupNodes.join(",") };
  if (backend.server) return { REDIS_URL: backend.server.url, REDIS_CLUSTER: "" };
  throw new Error(`backendEnv(): backend "${backend.name}" has neither a server nor a cluster`);
}
