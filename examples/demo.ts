/**
 * The drone demo: ground control (`petal-app-manager`) and a simulated flight controller
 * (`HEAR_FC`) under one supervisor, talking through Redis the way the real programs do.
 * Shows every exchange as it happens (who sent what, at which priority, ask latency), then
 * exits; `--follow` keeps the drone running and the view open until Ctrl-C.
 *
 *   npm run demo                 # REDIS_URL, else 127.0.0.1:6379, else a throw-away redis-server
 *   npm run demo -- --follow
 */
import { Redis } from "ioredis";
import { type Logger, pino } from "pino";
import { type ActorRef, type ActorSystem, createSystem, type Envelope, Priority, supervisor } from "redactor";
import { type GroundControl, groundControl } from "../actors/ground-control.js";
import {
  type FcAlert,
  type FcCommandResponse,
  type FcTelemetry,
  HEAR_FC_REPLY_TYPES,
  type HearFcProtocol,
  hearFc,
} from "../actors/hear-fc.js";
import { type ExampleRedis, findRedis, NoRedisError } from "./support/redis.js";

const FC = "HEAR_FC";
const GC = "petal-app-manager";
const HOME = { lat: 37.7749, lon: -122.4194 };
/** Simulated time the autopilot takes per command: it makes queueing, and pre-emption, visible. */
const COMMAND_LATENCY_MS = 25;

const follow = process.argv.includes("--follow");
if (process.argv.includes("--help") || process.argv.includes("-h")) {
  console.log(
    "usage: npm run demo [-- --follow]\n\n" +
      "Ground control and a simulated flight controller exchange commands, replies, telemetry\n" +
      "and an alert through Redis. Redis: REDIS_URL, else 127.0.0.1:6379, else a throw-away\n" +
      "redis-server. --follow keeps it running until Ctrl-C.",
  );
  process.exit(0);
}

// ---------------------------------------------------------------------------------------------
// The live view

const color = process.stdout.isTTY && !process.env.NO_COLOR;
const paint = (code: string) => (text: string) => (color ? `\x1b[${code}m${text}\x1b[0m` : text);
const dim = paint("2");
const bold = paint("1");
const red = paint("31");
const yellow = paint("33");
const cyan = paint("36");

const PRIORITY_NAMES: Record<number, string> = { 1: "LOW", 2: "NORMAL", 3: "HIGH", 4: "CRITICAL" };

function priorityText(priority: Priority): string {
  const name = (PRIORITY_NAMES[priority] ?? String(priority)).padEnd(8);
  if (priority === Priority.CRITICAL) return red(name);
  if (priority === Priority.HIGH) return yellow(name);
  if (priority === Priority.LOW) return dim(name);
  return name;
}

const ms = (value: number) => `${value < 10 ? value.toFixed(1) : Math.round(value)} ms`;

/** Prints the exchange as it happens, from the system's events and ground control's hooks. */
class LiveView {
  private readonly started = performance.now();
  /** Labels for the next request messages this process sends, in order. */
  private readonly labels: { label: string; how: "ask" | "tell" }[] = [];
  private readonly labelOf = new Map<string, string>();
  private lastRequestPriority: Priority = Priority.NORMAL;
  /** HEAR_FC's handled messages are listed while this is on (to show the order it ran them). */
  showHandled = false;
  handledOrder: string[] = [];
  readonly latencies: number[] = [];
  readonly handled = new Map<string, number>();
  failed = 0;
  telemetryEveryMs = 0;
  private lastTelemetryLine = 0;

  constructor(system: ActorSystem) {
    system.events.on("message.sent", (e) => {
      // Replies, telemetry and alerts are printed on arrival, with what they say; ticks are internal.
      if (e.sender === FC || e.type === "sim_tick" || e.type === "telemetry" || e.type === "alert") return;
      // Asks and tells both leave as plain messages; the label says which, and what for.
      const { label, how } = this.labels.shift() ?? { label: "", how: "tell" };
      this.labelOf.set(e.id, label);
      this.lastRequestPriority = e.priority;
      this.row(e.sender, e.recipient, e.type, e.priority, label ? `${how}: ${label}` : how);
    });
    system.events.on("ask.replied", (e) => {
      this.latencies.push(e.latencyMs);
    });
    system.events.on("message.completed", (e) => {
      this.handled.set(e.actor, (this.handled.get(e.actor) ?? 0) + 1);
      if (e.actor !== FC || e.type === "sim_tick") return;
      const label = this.labelOf.get(e.id);
      if (this.showHandled && label !== undefined) {
        this.handledOrder.push(label);
        this.note(`${FC} ran ${label} ${dim(`(${ms(e.durationMs)})`)}`);
      } else if (label === undefined) {
        // Sent by another process (the CLI, a peer): show that HEAR_FC served it.
        this.note(`${FC} handled ${e.type} from another process ${dim(`(${ms(e.durationMs)})`)}`);
      }
    });
    system.events.on("message.failed", (e) => {
      this.failed += 1;
      this.note(red(`${e.actor} could not handle ${e.type || "a message"}: ${e.error}`));
    });
  }

  private clock(): string {
    return dim(((performance.now() - this.started) / 1000).toFixed(3).padStart(7));
  }

  private row(from: string, to: string, type: string, priority: Priority, detail: string): void {
    const route = `${from} ${cyan("→")} ${to}`;
    const width = from.length + to.length + 3;
    console.log(
      `${this.clock()}  ${route}${" ".repeat(Math.max(1, 32 - width))}${type.padEnd(18)} ${priorityText(priority)}  ${detail}`,
    );
  }

  /** A line that is not a message: what happened, in words. */
  note(text: string): void {
    console.log(`${this.clock()}  ${" ".repeat(4)}${text}`);
  }

  section(title: string): void {
    console.log(`\n${bold(`── ${title} `)}${dim("─".repeat(Math.max(0, 74 - title.length)))}`);
  }

  header(): void {
    console.log(
      dim(
        `${"time s".padStart(7)}  ${"from → to".padEnd(32)}${"message".padEnd(19)}${"priority".padEnd(10)}detail`,
      ),
    );
  }

  /** Labels the next request sent (its row), then prints its reply with the ask's latency. */
  async ask<T>(
    label: string | undefined,
    send: () => Promise<T>,
    reply: (result: T) => string,
    requestType: keyof typeof HEAR_FC_REPLY_TYPES,
  ): Promise<T> {
    this.labels.push({ label: label ?? "", how: "ask" });
    const replies = this.latencies.length;
    const result = await send();
    const latencyMs = this.latencies.length > replies ? this.latencies.at(-1) : undefined;
    const latency = latencyMs === undefined ? "" : dim(`  ${ms(latencyMs)}`);
    // A reply travels at its request's priority.
    this.row(
      FC,
      GC,
      HEAR_FC_REPLY_TYPES[requestType],
      this.lastRequestPriority,
      `${reply(result)}${latency}`,
    );
    return result;
  }

  /** Labels the next request sent, a tell. */
  tell(label: string): void {
    this.labels.push({ label, how: "tell" });
  }

  telemetry(t: FcTelemetry, m: Envelope): void {
    const now = performance.now();
    if (now - this.lastTelemetryLine < this.telemetryEveryMs) return;
    this.lastTelemetryLine = now;
    const detail =
      `${(t.flight_state ?? "?").padEnd(10)} alt ${t.altitude.toFixed(1).padStart(5)} m  ` +
      `${t.speed.toFixed(1).padStart(4)} m/s  battery ${t.battery_level.toFixed(1)}%  ${t.system_status}`;
    this.row(m.sender, m.recipient, m.message_type, m.priority, dim(detail));
  }

  alert(a: FcAlert, m: Envelope): void {
    const details = a.details ?? {};
    const extra =
      typeof details.battery_level === "number"
        ? ` (battery ${details.battery_level}%, about ${details.estimated_flight_time} s of flight left)`
        : "";
    const text = `${a.severity}: ${a.message}${extra}`;
    this.row(
      m.sender,
      m.recipient,
      m.message_type,
      m.priority,
      a.severity === "critical" ? red(text) : yellow(text),
    );
  }

  /** A reply no ask was waiting for (the answers to told commands). */
  unsolicited(m: Envelope): void {
    if (m.message_type !== "command_response") return;
    const r = m.payload as FcCommandResponse;
    this.row(m.sender, m.recipient, m.message_type, m.priority, `${r.command_id} ${outcome(r)}`);
  }
}

function outcome(r: FcCommandResponse): string {
  const text = `${r.status}${r.message ? `: ${r.message}` : ""}`;
  return r.status === "success" ? text : red(text);
}

// ---------------------------------------------------------------------------------------------
// The story

async function story(
  gc: GroundControl,
  fc: ActorRef<HearFcProtocol>,
  view: LiveView,
  alerted: Promise<FcAlert>,
): Promise<void> {
  view.section("pre-flight: ground control checks and configures the flight controller");
  view.header();
  await view.ask(
    undefined,
    () => gc.checkHealth(),
    (h) => `${h.status}, battery ${h.battery_level}%, ${h.flight_state}`,
    "health_check",
  );
  await view.ask(
    "geofence 300 m, ceiling 60 m, low battery at 20%",
    () =>
      gc.configure({
        config_id: "cfg-1",
        flight_mode: "autonomous",
        max_altitude: 60,
        geofence: { enabled: true, center: HOME, radius: 300 },
        safety_settings: { battery_low_threshold: 20, auto_land_enabled: false },
      }),
    (ack) => `${ack.status} (${ack.configuration.flight_mode})`,
    "configuration",
  );

  view.section("flight: commands are asks at HIGH priority; telemetry streams in");
  const command = (label: string, request: Parameters<GroundControl["command"]>[0]) =>
    view.ask(
      label,
      () => gc.command(request),
      (r) => `${r.command_id} ${outcome(r)}`,
      "command",
    );
  await command("takeoff to 20 m", {
    command_id: "takeoff-1",
    command: "takeoff",
    parameters: { altitude: 20, speed: 4 },
  });
  await command("goto 150 m north", {
    command_id: "goto-1",
    command: "goto",
    parameters: { lat: HOME.lat + 0.00135, lon: HOME.lon, speed: 8 },
  });
  await command("goto 2 km away", {
    command_id: "goto-2",
    command: "goto",
    parameters: { lat: HOME.lat + 0.018, lon: HOME.lon },
  });
  await view.ask(
    undefined,
    () => gc.requestTelemetry(),
    (t) => `alt ${t.altitude} m, battery ${t.battery_level}%`,
    "telemetry_request",
  );

  const alert = await Promise.race([
    alerted,
    new Promise<undefined>((resolve) => setTimeout(() => resolve(undefined), 10_000).unref()),
  ]);
  if (!alert) throw new Error("no low-battery alert within 10 s");

  view.section("the operator sends the drone home; an obstacle: emergency_stop at CRITICAL");
  view.note(`4 waypoints told at HIGH; ${FC} takes ${COMMAND_LATENCY_MS} ms per command, so they queue`);
  view.showHandled = true;
  const path = [0.001, 0.0007, 0.0004, 0.0001];
  for (const [i, dLat] of path.entries()) {
    view.tell(`waypoint ${i + 1}`);
    // Told, not asked: their replies arrive in ground control's inbox as command_response.
    await fc.tell(
      "command",
      { command_id: `home-${i + 1}`, command: "goto", parameters: { lat: HOME.lat + dLat, lon: HOME.lon } },
      { priority: Priority.HIGH },
    );
  }
  await view.ask(
    "emergency_stop",
    () => gc.command({ command_id: "estop-1", command: "emergency_stop", parameters: { immediate: true } }),
    (r) => `${r.command_id} ${outcome(r)}`,
    "command",
  );
  const deadline = Date.now() + 5000;
  while (view.handledOrder.length < path.length + 1 && Date.now() < deadline) await sleep(20);
  view.showHandled = false;
  const position = view.handledOrder.indexOf("emergency_stop");
  if (position < 0) throw new Error(`${FC} did not run the emergency_stop within 5 s`);
  const before = view.handledOrder.slice(0, position);
  view.note(
    bold(
      `emergency_stop ran ${position === 0 ? "first" : `after ${before.join(", ")} (already in hand)`}, ` +
        `ahead of ${path.length - before.length} queued waypoint${path.length - before.length === 1 ? "" : "s"}`,
    ),
  );
  await sleep(300);

  view.section("after the stop");
  await view.ask(
    undefined,
    () => gc.checkHealth(),
    (h) => `${h.status}: motors ${h.checks.motors}, ${h.flight_state}`,
    "health_check",
  );
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function summary(view: LiveView, gc: GroundControl): void {
  const state = gc.getState();
  const sorted = [...view.latencies].sort((a, b) => a - b);
  const p50 = sorted[Math.floor(sorted.length / 2)] ?? 0;
  const max = sorted.at(-1) ?? 0;
  const counts = new Map<string, number>();
  for (const c of state.commands) counts.set(c.status, (counts.get(c.status) ?? 0) + 1);
  view.section("summary");
  console.log(
    `  handled: ${FC} ${view.handled.get(FC) ?? 0} messages, ${GC} ${view.handled.get(GC) ?? 0}; failed: ${view.failed}`,
  );
  console.log(
    `  asks: ${sorted.length}, latency p50 ${ms(p50)}, max ${ms(max)} (commands include the simulated ${COMMAND_LATENCY_MS} ms)`,
  );
  console.log(
    `  ground control saw ${state.telemetry_received} telemetry samples and ${state.alerts_received} alert; ` +
      `commands: ${[...counts].map(([status, n]) => `${n} ${status}`).join(", ")}`,
  );
}

// ---------------------------------------------------------------------------------------------
// Main

/**
 * The apps among `apps` that are online now, read as the runtime reads presence: the hash says
 * online and, when it names a heartbeat key, that key still exists.
 */
async function onlineAlready(url: string, apps: string[]): Promise<string[]> {
  const client = new Redis(url, { maxRetriesPerRequest: 1 });
  try {
    const online: string[] = [];
    for (const app of apps) {
      const fields = await client.hgetall(`status:${app}`);
      if (fields.status !== "online") continue;
      if (fields.heartbeat && (await client.exists(fields.heartbeat)) === 0) continue;
      online.push(app);
    }
    return online;
  } finally {
    client.disconnect();
  }
}

async function main(): Promise<number> {
  let redis: ExampleRedis;
  try {
    redis = await findRedis();
  } catch (err) {
    if (err instanceof NoRedisError) {
      console.error(`redactor demo: ${err.message}`);
      return 1;
    }
    throw err;
  }
  console.log(bold("redactor demo: ground control and a simulated flight controller, talking through Redis"));
  console.log(`Redis: ${redis.description}`);

  const log: Logger = pino({ level: process.env.REDACTOR_LOG_LEVEL ?? "warn" }, pino.destination(2));
  let system: ActorSystem | undefined;
  let stopping = false;
  const stop = async (code: number) => {
    if (stopping) return;
    stopping = true;
    await system?.shutdown();
    await redis.stop();
    process.exit(code);
  };
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    process.once(signal, () => {
      console.log(dim(`\n${signal}: shutting down`));
      void stop(follow ? 0 : 130);
    });
  }

  try {
    // The same Redis may serve a real drone: never command one, nor stand in for its app manager.
    const busy = await onlineAlready(redis.url, [FC, GC]);
    if (busy.length > 0) {
      console.error(
        `redactor demo: ${busy.join(" and ")} ${busy.length > 1 ? "are" : "is"} already online at this Redis ` +
          "(a real drone, or another demo). Stop it, or give the demo its own server: " +
          "REDIS_URL=redis://127.0.0.1:<port>",
      );
      await stop(1);
      return 1;
    }
    system = await createSystem({ redis: redis.url, appId: GC, logger: log });
    const view = new LiveView(system);
    let onAlert: (a: FcAlert) => void = () => {};
    const alerted = new Promise<FcAlert>((resolve) => {
      onAlert = resolve;
    });
    const gc = groundControl({
      id: GC,
      fcId: FC,
      onTelemetry: (t, m) => view.telemetry(t, m),
      onAlert: (a, m) => {
        view.alert(a, m);
        onAlert(a);
      },
      onMessage: (m) => view.unsolicited(m),
    });
    const tree = await system.spawn(
      supervisor({
        id: "drone",
        strategy: "one_for_one",
        maxRestarts: 5,
        withinMs: 10_000,
        children: [
          hearFc({
            id: FC,
            controllerId: GC,
            home: HOME,
            telemetryHz: 4,
            timeScale: 4,
            battery: 22,
            batteryDrainPerSecond: 0.5,
            commandLatencyMs: COMMAND_LATENCY_MS,
          }),
          gc.definition,
        ],
      }),
    );
    console.log(`Supervisor "${tree.id}" (one_for_one) started ${tree.actorIds.join(" and ")}`);

    await story(gc, system.ref<HearFcProtocol>(FC), view, alerted);
    summary(view, gc);

    if (follow) {
      view.section("following: telemetry once a second, a health check every 5 s; Ctrl-C to stop");
      view.telemetryEveryMs = 1000;
      for (;;) {
        await sleep(5000);
        if (stopping) break;
        await view
          .ask(
            "ask",
            () => gc.checkHealth(),
            (h) => `${h.status}, battery ${h.battery_level}%`,
            "health_check",
          )
          .catch((err: Error) => view.note(red(err.message)));
      }
      return 0;
    }
    console.log(dim("\nShutting down: actors finish what they hold and mark themselves offline."));
    await system.shutdown();
    await redis.stop();
    console.log("Done.");
    return 0;
  } catch (err) {
    console.error(`redactor demo failed: ${(err as Error).stack ?? err}`);
    await stop(1);
    return 1;
  }
}

process.exitCode = await main();
