/**
 * Takes docs/dashboard.png: the dashboard with the demo's actors running (ground control and a
 * simulated HEAR_FC under one supervisor), a few commands and telemetry, messages waiting in a
 * peer's inbox, a scheduled one and a dead letter whose lifecycle is open.
 *
 *   npm run screenshot                 # a throw-away redis-server; chromium from $CHROMIUM_PATH or /usr/bin/chromium
 *   npm run screenshot -- out.png
 */
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { pino } from "pino";
import { chromium } from "playwright-core";
import { groundControl } from "../actors/ground-control.js";
import { hearFc } from "../actors/hear-fc.js";
import { createSystem, defineActor, Priority, serveDashboard, supervisor } from "../src/index.js";
import { startRedis } from "../test/harness/redis-server.js";

const out = process.argv[2] ?? fileURLToPath(new URL("../docs/dashboard.png", import.meta.url));
const executablePath = [process.env.CHROMIUM_PATH, "/usr/bin/chromium", "/usr/bin/chromium-browser"].find(
  (p): p is string => p !== undefined && p !== "" && existsSync(p),
);
if (executablePath === undefined) {
  console.error("screenshot: no chromium at $CHROMIUM_PATH, /usr/bin/chromium or /usr/bin/chromium-browser");
  process.exit(1);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const redis = await startRedis();
const system = await createSystem({
  redis: redis.url,
  appId: "petal-app-manager",
  logger: pino({ level: "silent" }),
});
try {
  const gc = groundControl({ id: "petal-app-manager", fcId: "HEAR_FC" });
  await system.spawn(
    supervisor({
      id: "drone",
      strategy: "one_for_one",
      children: [
        hearFc({ id: "HEAR_FC", controllerId: "petal-app-manager", telemetryHz: 2, battery: 64 }),
        gc.definition,
      ],
    }),
  );
  await system.spawn(
    defineActor({
      id: "mission-log",
      maxAttempts: 1,
      handlers: {
        waypoint: () => {
          throw new Error("waypoint 3 is outside the geofence");
        },
      },
    }),
  );
  await gc.checkHealth();
  await gc.command({ command_id: "takeoff-1", command: "takeoff", parameters: { altitude: 20 } });
  const failed = await system.ref("mission-log").tell("waypoint", { n: 3, lat: 37.78, lon: -122.41 });
  // A peer that is not running: its inbox fills up, shown in the order it will run.
  const camera = system.ref("camera-gimbal");
  await camera.tell("point", { pitch: -30 }, { priority: Priority.LOW });
  await camera.tell("record", { seconds: 10 }, { priority: Priority.NORMAL });
  await camera.tell("stop_recording", {}, { priority: Priority.CRITICAL });
  await camera.tell("snapshot", {}, { delayMs: 600_000 });
  await sleep(1500);

  const dashboard = await serveDashboard(system, { port: 0 });
  const browser = await chromium.launch({ executablePath, headless: true, args: ["--no-sandbox"] });
  try {
    const page = await browser.newPage({ viewport: { width: 1400, height: 1000 }, deviceScaleFactor: 1 });
    await page.goto(`${dashboard.url}#app=mission-log&msg=${failed}&to=mission-log`);
    await page.locator("#message-place", { hasText: "dead" }).waitFor();
    await page.fill("#send-app", "HEAR_FC");
    await page.fill("#send-type", "health_check");
    await page.click("#send-ask");
    await page.locator("#send-result", { hasText: "reply in" }).waitFor();
    await sleep(1500);
    await page.screenshot({ path: out, fullPage: true });
    console.log(`screenshot: wrote ${out}`);
  } finally {
    await browser.close();
    await dashboard.close();
  }
} finally {
  await system.shutdown();
  await redis.stop();
}
