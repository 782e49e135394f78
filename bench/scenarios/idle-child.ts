/**
 * Child process of the idle-cost scenario: starts one system with N idle actors, reports its
 * memory before and after spawning them, then idles until told to stop. A process of its own,
 * so that its RSS is the actors' and nothing else's.
 *
 * argv: <redis url> <actor count>; messages to the parent: IdleReady, then "stopped".
 */
import { benchSystem, noopActor } from "../redactor.js";
import { sleep, uid } from "../util.js";

/** What the child reports once its actors are spawned. */
export interface IdleReady {
  type: "ready";
  actors: number;
  rssBefore: number;
  rssAfter: number;
  heapBefore: number;
  heapAfter: number;
  spawnMs: number;
}

/** Lets finished work settle and collects garbage, so memory readings are of live data only. */
async function settle(): Promise<NodeJS.MemoryUsage> {
  await sleep(300);
  for (let i = 0; i < 3; i++) globalThis.gc?.();
  await sleep(50);
  return process.memoryUsage();
}

async function main(): Promise<void> {
  const [url, countText] = process.argv.slice(2);
  const count = Number(countText);
  if (!url || !Number.isInteger(count) || count < 1) throw new Error("usage: idle-child <redis url> <count>");
  const system = await benchSystem({ redisUrl: url }, uid("idle"));
  // One actor up and down first, so code paths and pools are warm before the baseline reading.
  await system.spawn(noopActor(uid("idle-warm")));
  await system.stop(system.actorIds()[0] as string);
  const before = await settle();
  const t0 = performance.now();
  const prefix = uid("idle-actor");
  for (let start = 0; start < count; start += 500) {
    const batch = [];
    for (let k = start; k < Math.min(count, start + 500); k++)
      batch.push(system.spawn(noopActor(`${prefix}-${k}`)));
    await Promise.all(batch);
  }
  const spawnMs = performance.now() - t0;
  const after = await settle();
  const ready: IdleReady = {
    type: "ready",
    actors: count,
    rssBefore: before.rss,
    rssAfter: after.rss,
    heapBefore: before.heapUsed,
    heapAfter: after.heapUsed,
    spawnMs,
  };
  process.send?.(ready);
  process.on("message", async (message) => {
    if (message !== "stop") return;
    await system.shutdown();
    process.send?.("stopped", () => process.exit(0));
  });
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
