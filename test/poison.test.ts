/**
 * A poison message (its handler kills the process) must not take its batch-mates down:
 * attempts count runs that started, so a message handed back unstarted by a dying process
 * keeps all its attempts. The process is started again after each death, as a service
 * manager would.
 */
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import type { Job } from "./fixtures/delivery-worker.js";
import { uniqueId, useRedis } from "./harness/redis.js";
import { startsByKey } from "./harness/run-log.js";
import { type ChildWorker, startWorker, useSystems, waitFor } from "./harness/system.js";

const redis = useRedis();
const newSystem = useSystems(redis);
let current: ChildWorker | undefined;
let supervising = false;

afterEach(async () => {
  supervising = false;
  await current?.kill("SIGKILL");
});

/** Keeps one worker alive: starts it again after each death (also a death before it said ready). */
async function superviseWorker(env: Record<string, string>): Promise<void> {
  supervising = true;
  const start = async (): Promise<void> => {
    while (supervising) {
      try {
        const worker = await startWorker("delivery-worker", {
          REDIS_URL: redis().url,
          APP_ID: uniqueId("w"),
          ...env,
        });
        current = worker;
        worker.child.once("exit", () => {
          if (supervising) void start();
        });
        return;
      } catch {
        // It died before it was ready (the poison ran at once): start it again.
      }
    }
  };
  await start();
}

describe("poison messages", () => {
  for (const order of ["poison first", "poison second"] as const) {
    it(`a message that kills its process runs maxAttempts times and its batch-mate once (${order})`, async () => {
      const actor = uniqueId("poison");
      const log = join(mkdtempSync(join(tmpdir(), "redactor-runs-")), "runs.log");
      const sender = await newSystem();
      const ref = sender.ref<Job>(actor);
      const poison = () => ref.tell("job", { key: "poison", die: "exit" });
      const ordinary = () => ref.tell("job", { key: "ordinary" });
      const ids =
        order === "poison first" ? [await poison(), await ordinary()] : [await ordinary(), await poison()];
      await superviseWorker({ ACTOR_ID: actor, RUN_LOG: log, HEARTBEAT_MS: "200", MAX_ATTEMPTS: "3" });
      const admin = redis().client();
      await waitFor(
        async () =>
          (await admin.zcard(`queue:${actor}:dead`)) >= 1 &&
          (await sender.messageStatus(ids[order === "poison first" ? 1 : 0] as string)) === "completed",
        40_000,
        "the poison dead-lettered and the ordinary message completed",
      );
      const starts = startsByKey(log);
      expect(starts.get("poison")).toBe(3);
      expect(starts.get("ordinary")).toBe(1);
      const dead = (await admin.zrange(`queue:${actor}:dead`, 0, -1)).map((e) => JSON.parse(e));
      expect(dead).toHaveLength(1);
      expect(dead[0]).toMatchObject({ reason: "attempts-exhausted", attempts: 3 });
      // The hash counts runs that started: three, not the fourth claim that refused to run it.
      const poisonId = ids[order === "poison first" ? 0 : 1] as string;
      expect(await admin.hget(`message:${poisonId}`, "attempts")).toBe("3");
    }, 60_000);
  }
});
