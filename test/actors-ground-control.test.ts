/**
 * actors/ground-control.ts: sends commands, configuration and health checks to a flight
 * controller, collects its telemetry and alerts, and exposes the latest picture locally and as
 * the `state` reply; works with controllers that reply without reply_to (the C++ guide's).
 */
import { describe, expect, expectTypeOf, it } from "vitest";
import {
  type GroundControlProtocol,
  type GroundControlState,
  groundControl,
} from "../actors/ground-control.js";
import { type FcAlert, hearFc } from "../actors/hear-fc.js";
import { AskTimeoutError, type Envelope, Priority } from "../src/index.js";
import { uniqueId, useRedis } from "./harness/redis.js";
import { useSystems, waitFor, waitForValue } from "./harness/system.js";

const redis = useRedis();
const newSystem = useSystems(redis);

describe("ground-control", () => {
  it("commands, configures and checks a flight controller, and keeps the picture", async () => {
    const fcId = uniqueId("HEAR_FC");
    const gcId = uniqueId("petal-app-manager");
    const alerts: { alert: FcAlert; message: Envelope }[] = [];
    let samples = 0;
    const gc = groundControl({
      id: gcId,
      fcId,
      onAlert: (alert, message) => alerts.push({ alert, message }),
      onTelemetry: () => {
        samples += 1;
      },
    });
    // The system's app id is the ground control's: replies and telemetry share one inbox.
    const system = await newSystem({ appId: gcId });
    await system.spawn(gc.definition);
    await system.spawn(
      hearFc({
        id: fcId,
        controllerId: gcId,
        telemetryHz: 20,
        battery: 20.6,
        batteryDrainPerSecond: 1,
        timeScale: 2,
      }),
    );

    const health = await gc.checkHealth();
    expect(health).toMatchObject({ status: "healthy", flight_state: "landed" });
    const ack = await gc.configure({ max_altitude: 40, safety_settings: { auto_land_enabled: false } });
    expect(ack.status).toBe("applied");
    const takeoff = await gc.command({ command: "takeoff", parameters: { altitude: 15 } });
    expect(takeoff).toMatchObject({ command: "takeoff", status: "success" });
    expect(takeoff.command_id).toMatch(/^cmd_/);
    const refused = await gc.command({
      command_id: "too-high",
      command: "goto",
      parameters: { lat: 37.775, lon: -122.42, altitude: 90 },
    });
    expect(refused).toMatchObject({ command_id: "too-high", status: "failed" });

    await waitFor(() => alerts.length > 0, 5000, "the low-battery alert");
    expect(alerts[0]?.alert).toMatchObject({
      severity: "warning",
      code: "low_battery",
      message: "Low battery warning",
    });
    expect(alerts[0]?.message).toMatchObject({
      sender: fcId,
      priority: Priority.HIGH,
      message_type: "alert",
    });
    await waitFor(() => samples >= 3, 5000, "telemetry");

    const sample = await gc.requestTelemetry();
    expect(sample.flight_state).not.toBe("landed");
    const state = gc.getState();
    expect(state).toMatchObject({
      fc_id: fcId,
      health: { status: "healthy" },
      configuration: { max_altitude: 40, safety_settings: { auto_land_enabled: false } },
      alerts_received: 1,
      alerts: [{ priority: Priority.HIGH, sender: fcId, alert: { code: "low_battery" } }],
    });
    expect(state.telemetry_received).toBeGreaterThanOrEqual(3);
    expect(state.telemetry).not.toBeNull();
    expect(state.commands.map((c) => [c.command, c.status, c.priority])).toEqual([
      ["takeoff", "success", Priority.HIGH],
      ["goto", "failed", Priority.HIGH],
    ]);
    expect(state.commands[0]?.latency_ms).toBeGreaterThan(0);

    // Emergency stops go at CRITICAL without being told to.
    const stop = await gc.command({ command: "emergency_stop" });
    expect(stop.status).toBe("success");
    expect(gc.getState().commands.at(-1)).toMatchObject({
      command: "emergency_stop",
      priority: Priority.CRITICAL,
    });

    // The same picture, through Redis, for other processes and the CLI.
    const remote = await system.ref<GroundControlProtocol>(gcId).ask("state", {});
    expectTypeOf(remote).toEqualTypeOf<GroundControlState>();
    expect(remote.alerts_received).toBe(1);
    expect(remote.commands.map((c) => c.command)).toEqual(["takeoff", "goto", "emergency_stop"]);
  });

  it("matches replies of a controller that never sets reply_to, by command_id", async () => {
    const fcId = uniqueId("cpp-fc");
    const gc = groundControl({ id: uniqueId("gc"), fcId });
    const system = await newSystem();
    await system.spawn(gc.definition);
    const peer = redis().client();
    const pending = gc.command({ command_id: "cmd_7", command: "land" }, { timeoutMs: 5000 });
    // The C++ flight controller: ZPOPMAX its inbox, reply command_response at priority 3, no reply_to.
    const request = await waitForValue(
      async () => {
        const popped = await peer.zpopmax(`queue:${fcId}:inbox`, 1);
        return popped[0] ? (JSON.parse(popped[0]) as Envelope) : null;
      },
      5000,
      "the command",
    );
    expect(request).toMatchObject({
      message_type: "command",
      priority: Priority.HIGH,
      payload: { command_id: "cmd_7" },
    });
    const reply = {
      id: "cpp-reply-1",
      sender: fcId,
      recipient: request.sender,
      message_type: "command_response",
      payload: { command_id: "cmd_7", status: "success" },
      priority: 3,
      timestamp: Date.now() / 1000,
    };
    await peer.zadd(`queue:${request.sender}:inbox`, 3000 + reply.timestamp, JSON.stringify(reply));
    await peer.publish(`channel:${request.sender}`, `new_message:${reply.id}`);
    expect(await pending).toEqual({ command_id: "cmd_7", status: "success" });
    expect(gc.getState().commands[0]).toMatchObject({
      command_id: "cmd_7",
      command: "land",
      status: "success",
    });
  });

  it("records replies that no request waits for, and marks commands that got none", async () => {
    const fcId = uniqueId("silent-fc");
    const gcId = uniqueId("gc");
    const seen: string[] = [];
    const gc = groundControl({ id: gcId, fcId, onMessage: (m) => seen.push(m.message_type) });
    const system = await newSystem();
    await system.spawn(gc.definition);

    await expect(
      gc.command({ command_id: "lost", command: "hover" }, { timeoutMs: 300 }),
    ).rejects.toBeInstanceOf(AskTimeoutError);
    expect(gc.getState().commands[0]).toMatchObject({ command_id: "lost", status: "timeout" });

    // A reply arriving at ground control's own inbox (a command someone told, a late reply).
    await system
      .ref(gcId)
      .tell("command_response", { command_id: "told-1", command: "land", status: "success" });
    await system.ref(gcId).tell("health_response", {
      status: "degraded",
      battery_level: 18,
      flight_state: "hovering",
      armed: true,
      uptime: 12,
      checks: { battery: "low", gps: "ok", motors: "ok", geofence: "disabled" },
      timestamp: Date.now() / 1000,
    });
    await waitFor(() => seen.length === 2, 5000, "both replies");
    expect(gc.getState().commands.at(-1)).toMatchObject({ command_id: "told-1", status: "success" });
    expect(gc.getState().health?.status).toBe("degraded");

    // Malformed telemetry is dead-lettered, not recorded.
    const bad = await system.ref(gcId).tell("telemetry", { battery_level: "full" });
    await waitFor(async () => (await system.messageStatus(bad)) === "failed", 5000, "the failed status");
    expect(gc.getState().telemetry).toBeNull();
  });

  it("says it must be spawned before it can send", async () => {
    const gc = groundControl({ id: uniqueId("gc") });
    await expect(gc.checkHealth()).rejects.toThrow(/spawn its definition/);
  });
});
