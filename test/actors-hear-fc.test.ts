/**
 * actors/hear-fc.ts: the flight-controller simulator answers every request type of its
 * protocol with the peers' reply types, pushes telemetry and alerts to its controller, refuses
 * what a flight controller must refuse, and runs an emergency_stop before every command still
 * queued.
 */
import { describe, expect, expectTypeOf, it } from "vitest";
import {
  type FcCommand,
  type FcCommandResponse,
  type FcTelemetry,
  type HearFcProtocol,
  hearFc,
} from "../actors/hear-fc.js";
import { logger } from "../actors/logger.js";
import { type ActorSystem, Priority } from "../src/index.js";
import { uniqueId, useRedis } from "./harness/redis.js";
import { useSystems, waitFor } from "./harness/system.js";

const redis = useRedis();
const newSystem = useSystems(redis);

async function fcSystem(options: Parameters<typeof hearFc>[0] = {}) {
  const fcId = uniqueId("HEAR_FC");
  const controller = logger({ id: uniqueId("controller") });
  const system = await newSystem();
  await system.spawn(controller.definition);
  await system.spawn(hearFc({ id: fcId, controllerId: controller.id, telemetryHz: 0, ...options }));
  return { system, fcId, controller, fc: system.ref<HearFcProtocol>(fcId) };
}

/** The messages an app sent, from its capped outbox copy, oldest first. */
async function sentBy(app: string): Promise<Record<string, unknown>[]> {
  const members = await redis().client().zrange(`queue:${app}:outbox`, 0, -1);
  return members.map((m) => JSON.parse(m) as Record<string, unknown>);
}

/** Records the order in which an actor finished messages, by id. */
function completionOrder(system: ActorSystem, actor: string): string[] {
  const order: string[] = [];
  system.events.on("message.completed", (e) => {
    if (e.actor === actor) order.push(e.id);
  });
  return order;
}

describe("hear-fc", () => {
  it("answers command with command_response carrying its command_id", async () => {
    const { fc, fcId } = await fcSystem();
    const reply = await fc.ask(
      "command",
      { command_id: "cmd_1", command: "takeoff", parameters: { altitude: 20, speed: 2 } },
      { priority: Priority.HIGH },
    );
    expectTypeOf(reply).toEqualTypeOf<FcCommandResponse>();
    expect(reply).toEqual({
      command_id: "cmd_1",
      command: "takeoff",
      status: "success",
      message: "taking off to 20 m",
    });
    const [wire] = (await sentBy(fcId)).filter((m) => m.message_type === "command_response");
    expect(wire).toMatchObject({ sender: fcId, priority: Priority.HIGH, payload: { command_id: "cmd_1" } });
    expect(typeof wire?.reply_to).toBe("string");
  });

  it("answers configuration, health_check and telemetry_request with the peers' reply types", async () => {
    const { fc, fcId } = await fcSystem({ battery: 80 });
    const ack = await fc.ask("configuration", {
      config_id: "cfg-1",
      flight_mode: "autonomous",
      max_altitude: 100,
      geofence: { enabled: true, center: { lat: 37.7749, lon: -122.4194 }, radius: 1000 },
      safety_settings: { battery_low_threshold: 25 },
    });
    expect(ack).toMatchObject({
      config_id: "cfg-1",
      status: "applied",
      configuration: {
        flight_mode: "autonomous",
        max_altitude: 100,
        geofence: { enabled: true, radius: 1000 },
        // A partial update keeps what it does not mention.
        safety_settings: { battery_low_threshold: 25, auto_land_enabled: true },
      },
    });
    const health = await fc.ask("health_check", { check_id: "h-1" });
    expect(health).toMatchObject({
      check_id: "h-1",
      status: "healthy",
      battery_level: 80,
      flight_state: "landed",
      armed: false,
      checks: { battery: "ok", gps: "ok", motors: "ok", geofence: "ok" },
    });
    const telemetry = await fc.ask("telemetry_request", {});
    expectTypeOf(telemetry).toEqualTypeOf<FcTelemetry>();
    expect(telemetry).toMatchObject({
      battery_level: 80,
      altitude: 0,
      gps_coordinates: { lat: 37.7749, lon: -122.4194 },
      system_status: "normal",
      flight_state: "landed",
    });
    const types = (await sentBy(fcId)).map((m) => m.message_type);
    expect(types).toEqual(["configuration_ack", "health_response", "telemetry"]);
  });

  it("refuses what a flight controller must refuse, with the reason", async () => {
    const { fc } = await fcSystem();
    const command = (c: FcCommand) => fc.ask("command", c);
    expect(await command({ command_id: "l", command: "land" })).toMatchObject({
      status: "failed",
      message: "not airborne",
    });
    await fc.ask("configuration", { max_altitude: 50, geofence: { enabled: true, radius: 200 } });
    expect(
      await command({ command_id: "t1", command: "takeoff", parameters: { altitude: 80 } }),
    ).toMatchObject({ status: "failed", message: "altitude 80 m is above the 50 m ceiling" });
    expect(
      await command({ command_id: "t2", command: "takeoff", parameters: { altitude: 30 } }),
    ).toMatchObject({
      status: "success",
    });
    expect(
      await command({ command_id: "g1", command: "goto", parameters: { lat: 37.79, lon: -122.4194 } }),
    ).toMatchObject({ status: "failed", message: expect.stringContaining("outside its 200 m") });
    // Lowering the ceiling below where the drone is would be unsafe: rejected, nothing changed.
    const ack = await fc.ask("configuration", { max_altitude: 0.001 });
    expect(ack.status).toBe("rejected");
    expect(ack.configuration.max_altitude).toBe(50);
  });

  it("dead-letters a command that fails its schema and keeps serving", async () => {
    const { system, fc, fcId } = await fcSystem();
    const id = await system
      .ref(fcId)
      .tell("command", { command_id: "bad", command: "goto", parameters: { lat: 123 } });
    await waitFor(async () => (await system.messageStatus(id)) === "failed", 5000, "the failed status");
    const [dead] = (await redis().client().zrange(`queue:${fcId}:dead`, 0, -1)).map((m) => JSON.parse(m));
    expect(dead.reason).toBe("invalid-payload");
    expect(dead.error).toMatch(/parameters\.lat/);
    expect(dead.error).toMatch(/parameters\.lon/);
    expect((await fc.ask("command", { command_id: "ok", command: "hover" })).command_id).toBe("ok");
  });

  it("sends telemetry to its controller at the configured rate", async () => {
    const { controller, fcId } = await fcSystem({ telemetryHz: 20 });
    await waitFor(() => controller.entries({ type: "telemetry" }).length >= 6, 5000, "six samples");
    const samples = controller.entries({ type: "telemetry" });
    expect(samples[0]).toMatchObject({ sender: fcId, recipient: controller.id, priority: Priority.NORMAL });
    expect(samples[0]?.payload).toMatchObject({ battery_level: 100, flight_state: "landed" });
    // Twenty a second: six take about 0.25 s; far slower means the rate is not honoured.
    const span = (samples[5]?.received_at ?? 0) - (samples[0]?.received_at ?? 0);
    expect(span).toBeGreaterThan(0.15);
    expect(span).toBeLessThan(1.5);
    // The ticks that drive telemetry are the actor's own business: nothing else reaches the controller.
    expect(controller.entries().every((e) => e.type === "telemetry")).toBe(true);
  });

  it("alerts its controller when the battery runs low, and lands by itself", async () => {
    const { fc, controller, fcId } = await fcSystem({
      battery: 21,
      batteryDrainPerSecond: 1,
      timeScale: 5,
      telemetryHz: 10,
    });
    await fc.ask("command", { command_id: "up", command: "takeoff", parameters: { altitude: 30 } });
    await waitFor(() => controller.entries({ type: "alert" }).length > 0, 5000, "the alert");
    const [alert] = controller.entries({ type: "alert" });
    expect(alert).toMatchObject({
      sender: fcId,
      priority: Priority.HIGH,
      payload: {
        severity: "warning",
        code: "low_battery",
        message: "Low battery warning: landing automatically",
        details: { estimated_flight_time: expect.any(Number) },
      },
    });
    // With auto-land on (the default), the drone comes down by itself: telemetry shows it.
    const states = () =>
      controller.entries({ type: "telemetry" }).map((e) => (e.payload as FcTelemetry).flight_state);
    await waitFor(() => states().includes("landing"), 5000, "the landing");
    await waitFor(() => states().at(-1) === "landed", 5000, "the touchdown");
    const landed = controller.entries({ type: "telemetry" }).at(-1)?.payload as FcTelemetry;
    expect(landed).toMatchObject({ altitude: 0, armed: false, system_status: "warning" });
    // A takeoff with the battery below the threshold is refused.
    expect(await fc.ask("command", { command_id: "again", command: "takeoff" })).toMatchObject({
      status: "failed",
      message: expect.stringMatching(/below the 20% minimum/),
    });
  });

  it("runs an emergency_stop before every command already queued, even while busy", async () => {
    const fcId = uniqueId("HEAR_FC");
    const system = await newSystem();
    const order = completionOrder(system, fcId);
    await system.spawn(hearFc({ id: fcId, telemetryHz: 0, commandLatencyMs: 100 }));
    const ref = system.ref<HearFcProtocol>(fcId);
    const goto = (n: number) => ({
      command_id: `wp-${n}`,
      command: "goto" as const,
      parameters: { lat: 37.775 + n / 10_000, lon: -122.4194 },
    });
    // The first command is in hand (100 ms) while the rest queue up behind it.
    const first = await ref.tell("command", goto(0), { priority: Priority.HIGH });
    await waitFor(
      async () => (await system.messageStatus(first)) === "processing",
      5000,
      "the first command",
    );
    const queued: string[] = [];
    for (let n = 1; n <= 6; n++) queued.push(await ref.tell("command", goto(n), { priority: Priority.HIGH }));
    const stop = await ref.ask(
      "command",
      { command_id: "estop", command: "emergency_stop", parameters: { immediate: true } },
      { priority: Priority.CRITICAL, timeoutMs: 5000 },
    );
    expect(stop).toMatchObject({ command_id: "estop", status: "success", message: "motors stopped" });
    await waitFor(() => order.length === 8, 5000, "every command");
    expect(order[0]).toBe(first);
    // The stop jumped all six queued commands; those then ran in the order they were sent.
    expect(order.slice(2)).toEqual(queued);
    expect(order[1]).not.toBe(first);
    expect(queued).not.toContain(order[1]);
  });

  it("runs an emergency_stop first when it finds it queued behind a backlog at start", async () => {
    const fcId = uniqueId("HEAR_FC");
    const system = await newSystem();
    const ref = system.ref<HearFcProtocol>(fcId);
    // Nobody serves the inbox yet: twenty commands, then the stop, all wait in Redis.
    const backlog: string[] = [];
    for (let n = 0; n < 20; n++) {
      backlog.push(
        await ref.tell("command", { command_id: `h-${n}`, command: "hover" }, { priority: Priority.HIGH }),
      );
    }
    const stop = await ref.tell(
      "command",
      { command_id: "estop", command: "emergency_stop" },
      { priority: Priority.CRITICAL },
    );
    const order = completionOrder(system, fcId);
    await system.spawn(hearFc({ id: fcId, telemetryHz: 0 }));
    await waitFor(() => order.length === 21, 5000, "the backlog");
    expect(order[0]).toBe(stop);
    expect(order.slice(1)).toEqual(backlog);
  });
});
