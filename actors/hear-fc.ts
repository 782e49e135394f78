/**
 * HEAR_FC: a flight-controller simulator that speaks the drone's protocol (the petal-app-manager
 * communication system and docs/PROTOCOL.md), so ground software can be built and tested without a
 * drone. It answers `command` with `command_response` (carrying `command_id`),
 * `configuration` with `configuration_ack`, `health_check` with `health_response` and
 * `telemetry_request` with the current `telemetry`; on its own it sends `telemetry` at a
 * configurable rate and `alert`s (low battery) to its controller.
 *
 * The simulation is deliberately simple: straight-line flight at the commanded speed, a battery
 * that drains while airborne, a geofence and an altitude ceiling. `emergency_stop` is acted on
 * at once and, sent at CRITICAL priority (as `ground-control` does), runs before every command
 * still queued: this actor claims one message at a time so that a later, more urgent message
 * is never stuck behind an already-claimed batch.
 */
import { randomUUID } from "node:crypto";
import {
  type ActorContext,
  type ActorDefinition,
  type ActorRef,
  defineActor,
  Priority,
  SystemStoppedError,
} from "redactor";
import { z } from "zod";

// ---------------------------------------------------------------------------------------------
// The protocol

/** A WGS84 position. */
export interface GpsCoordinates {
  lat: number;
  lon: number;
}

/** One command of `command`, discriminated by `command`; `command_id` comes back in the reply. */
export type FcCommand =
  | {
      command_id: string;
      command: "takeoff";
      /** Climb to `altitude` m (default 10) at `speed` m/s (default 2). */
      parameters?: { altitude?: number; speed?: number };
    }
  | {
      command_id: string;
      command: "land";
      /** Descend at `speed` m/s (default 1). */
      parameters?: { speed?: number };
    }
  | {
      command_id: string;
      command: "goto";
      /** Fly to a point at `speed` m/s (default 5), at `altitude` m (default: keep the current one). */
      parameters: { lat: number; lon: number; altitude?: number; speed?: number };
    }
  | {
      command_id: string;
      command: "hover";
      /** Stop where it is and hold position. */
      parameters?: Record<string, never>;
    }
  | {
      command_id: string;
      command: "emergency_stop";
      /** `immediate` (default true) cuts the motors at once; false descends fast, then disarms. */
      parameters?: { immediate?: boolean };
    };

/** The command names. */
export type FcCommandName = FcCommand["command"];

/** The reply to `command`, of message type `command_response`. */
export interface FcCommandResponse {
  command_id: string;
  /** Which command this answers (this simulator always says; the C++ guide's controllers may not). */
  command?: FcCommandName;
  /** `success`: accepted and under way; `failed`: refused, `message` says why. */
  status: "success" | "failed" | "error";
  message?: string;
}

/** The flight controller's state machine, as reported in telemetry and health. */
export type FlightState = "landed" | "taking_off" | "flying" | "hovering" | "landing" | "emergency";

/** `configuration`: a partial update, merged into the current configuration. */
export interface FcConfiguration {
  /** Echoed in the ack, to correlate it. */
  config_id?: string;
  flight_mode?: string;
  /** Ceiling for takeoff and goto, m. */
  max_altitude?: number;
  /** A circle `goto` may not leave. */
  geofence?: { enabled: boolean; center?: GpsCoordinates; radius?: number };
  safety_settings?: {
    /** Below this battery %, an alert is sent and takeoff is refused. */
    battery_low_threshold?: number;
    /** Land by itself when the battery is low. */
    auto_land_enabled?: boolean;
  };
}

/** The configuration in force, every field filled in. */
export interface FcEffectiveConfiguration {
  flight_mode: string;
  max_altitude: number;
  geofence: { enabled: boolean; center: GpsCoordinates; radius: number };
  safety_settings: { battery_low_threshold: number; auto_land_enabled: boolean };
}

/** The reply to `configuration`, of message type `configuration_ack`. */
export interface FcConfigurationAck {
  config_id?: string;
  status: "applied" | "rejected";
  message?: string;
  /** The configuration in force after this message (unchanged when rejected). */
  configuration: FcEffectiveConfiguration;
}

/** `health_check`; `check_id` is echoed in the reply. */
export interface FcHealthCheck {
  check_id?: string;
}

/** The reply to `health_check`, of message type `health_response`. */
export interface FcHealthResponse {
  check_id?: string;
  status: "healthy" | "degraded" | "critical";
  battery_level: number;
  flight_state: FlightState;
  armed: boolean;
  /** Seconds since this incarnation started. */
  uptime: number;
  checks: {
    battery: "ok" | "low" | "critical";
    gps: "ok";
    motors: "ok" | "stopped";
    geofence: "ok" | "disabled";
  };
  timestamp: number;
}

/** `telemetry_request`: asks for one telemetry sample now. */
export type FcTelemetryRequest = Record<string, never>;

/**
 * A telemetry sample, as the seed document's example has it. `flight_state` and `armed` are
 * this simulator's additions; other flight controllers may leave them out.
 */
export interface FcTelemetry {
  /** Unix seconds. */
  timestamp: number;
  /** Percent. */
  battery_level: number;
  gps_coordinates: GpsCoordinates;
  /** Metres above home. */
  altitude: number;
  /** Metres per second. */
  speed: number;
  /** `normal`, `warning`, `critical` or `emergency` from this simulator; free text from others. */
  system_status: string;
  flight_state?: FlightState;
  armed?: boolean;
}

/** An alert for the controller. */
export interface FcAlert {
  severity: "info" | "warning" | "critical";
  message: string;
  /** Machine-readable kind; this simulator sends `low_battery` and `critical_battery`. */
  code?: string;
  details?: Record<string, unknown>;
}

/** What HEAR_FC handles: type the refs to it with this (`system.ref<HearFcProtocol>("HEAR_FC")`). */
export type HearFcProtocol = {
  command: { payload: FcCommand; reply: FcCommandResponse };
  configuration: { payload: FcConfiguration; reply: FcConfigurationAck };
  health_check: { payload: FcHealthCheck; reply: FcHealthResponse };
  telemetry_request: { payload: FcTelemetryRequest; reply: FcTelemetry };
};

/** What HEAR_FC sends to its controller, unasked. */
export type FcControllerProtocol = {
  telemetry: { payload: FcTelemetry };
  alert: { payload: FcAlert };
};

/** The message types of the replies, as the peers name them. */
export const HEAR_FC_REPLY_TYPES = {
  command: "command_response",
  configuration: "configuration_ack",
  health_check: "health_response",
  telemetry_request: "telemetry",
} as const;

// ---------------------------------------------------------------------------------------------
// Schemas (Standard Schema, via zod): a payload that fails is dead-lettered with the reason.

const gps = z.object({ lat: z.number().min(-90).max(90), lon: z.number().min(-180).max(180) });
const commandId = z.string().min(1);
const speed = z.number().positive().max(50);
const altitude = z.number().positive().max(10_000);

/** Schema of `command`. */
export const FcCommandSchema = z.discriminatedUnion("command", [
  z.object({
    command_id: commandId,
    command: z.literal("takeoff"),
    parameters: z.object({ altitude: altitude.optional(), speed: speed.optional() }).optional(),
  }),
  z.object({
    command_id: commandId,
    command: z.literal("land"),
    parameters: z.object({ speed: speed.optional() }).optional(),
  }),
  z.object({
    command_id: commandId,
    command: z.literal("goto"),
    parameters: z.object({ ...gps.shape, altitude: altitude.optional(), speed: speed.optional() }),
  }),
  z.object({
    command_id: commandId,
    command: z.literal("hover"),
    parameters: z.object({}).strict().optional(),
  }),
  z.object({
    command_id: commandId,
    command: z.literal("emergency_stop"),
    parameters: z.object({ immediate: z.boolean().optional() }).optional(),
  }),
]);

/** Schema of `configuration`. */
export const FcConfigurationSchema = z.object({
  config_id: z.string().optional(),
  flight_mode: z.string().min(1).optional(),
  max_altitude: altitude.optional(),
  geofence: z
    .object({ enabled: z.boolean(), center: gps.optional(), radius: z.number().positive().optional() })
    .optional(),
  safety_settings: z
    .object({
      battery_low_threshold: z.number().min(0).max(100).optional(),
      auto_land_enabled: z.boolean().optional(),
    })
    .optional(),
});

/** Schema of `health_check`. */
export const FcHealthCheckSchema = z.object({ check_id: z.string().optional() });

/** Schema of `telemetry_request` (an object; any fields are ignored). */
export const FcTelemetryRequestSchema = z.object({});

/** Schema of `telemetry`, lenient about extra fields, as telemetry from other controllers varies. */
export const FcTelemetrySchema = z.looseObject({
  timestamp: z.number(),
  battery_level: z.number(),
  gps_coordinates: z.looseObject({ lat: z.number(), lon: z.number() }),
  altitude: z.number(),
  speed: z.number(),
  system_status: z.string(),
  flight_state: z.enum(["landed", "taking_off", "flying", "hovering", "landing", "emergency"]).optional(),
  armed: z.boolean().optional(),
});

/** Schema of `alert`. */
export const FcAlertSchema = z.looseObject({
  severity: z.enum(["info", "warning", "critical"]),
  message: z.string(),
  code: z.string().optional(),
  details: z.record(z.string(), z.unknown()).optional(),
});

// ---------------------------------------------------------------------------------------------
// The actor

/** Options of `hearFc`. */
export interface HearFcOptions {
  /**
   * The app id; its mailbox is `queue:<id>:inbox`.
   * @default "HEAR_FC"
   */
  id?: string;
  /**
   * Who receives telemetry and alerts.
   * @default "petal-app-manager"
   */
  controllerId?: string;
  /**
   * Telemetry samples per second sent to the controller; 0 sends none (the simulation then
   * advances only when a message arrives).
   * @default 1
   */
  telemetryHz?: number;
  /**
   * Where the drone starts, and the default geofence centre.
   * @default { lat: 37.7749, lon: -122.4194 }
   */
  home?: GpsCoordinates;
  /**
   * Battery level at start, percent.
   * @default 100
   */
  battery?: number;
  /**
   * Battery drain while airborne, percent per simulated second.
   * @default 0.1
   */
  batteryDrainPerSecond?: number;
  /**
   * Simulated seconds per real second, to make a flight fit in a demo.
   * @default 1
   */
  timeScale?: number;
  /**
   * Time the autopilot takes to act on each command before it replies, ms (not applied to
   * emergency_stop). Non-zero values make queueing, and emergency pre-emption, visible.
   * @default 0
   */
  commandLatencyMs?: number;
  /**
   * The configuration at start; `configuration` messages change it.
   * @default { flight_mode: "manual", max_altitude: 120, geofence: { enabled: false, center: home, radius: 1000 }, safety_settings: { battery_low_threshold: 20, auto_land_enabled: true } }
   */
  configuration?: FcConfiguration;
  /**
   * Messages claimed per round trip. One, so that a CRITICAL message sent while a command is
   * running goes before everything else still queued; raise it only for throughput tests.
   * @default 1
   */
  claimBatch?: number;
}

/** The internal tick that drives telemetry; only this actor sends it to itself. */
type TickProtocol = { sim_tick: { payload: { incarnation: string } } };

/** Everything the actor handles: HearFcProtocol plus its own tick. */
export type HearFcActorProtocol = HearFcProtocol & TickProtocol;

/** The simulated drone, one per incarnation. */
export interface FcSimState {
  readonly incarnation: string;
  readonly startedAt: number;
  /** Real time of the last simulation step, ms. */
  lastStep: number;
  flight: FlightState;
  armed: boolean;
  position: GpsCoordinates;
  altitude: number;
  targetAltitude: number;
  target: GpsCoordinates | null;
  horizontalSpeed: number;
  verticalSpeed: number;
  /** Speed over the last step, m/s. */
  speed: number;
  battery: number;
  config: FcEffectiveConfiguration;
  lowAlertSent: boolean;
  criticalAlertSent: boolean;
}

const METRES_PER_DEGREE = 111_320;

/** Great-circle distance is overkill over a few km: an equirectangular approximation, m. */
export function distanceMetres(a: GpsCoordinates, b: GpsCoordinates): number {
  const dLat = (b.lat - a.lat) * METRES_PER_DEGREE;
  const dLon = (b.lon - a.lon) * METRES_PER_DEGREE * Math.cos((((a.lat + b.lat) / 2) * Math.PI) / 180);
  return Math.hypot(dLat, dLon);
}

function round(value: number, digits = 2): number {
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}

function mergeConfiguration(
  base: FcEffectiveConfiguration,
  update: FcConfiguration,
): FcEffectiveConfiguration {
  return {
    flight_mode: update.flight_mode ?? base.flight_mode,
    max_altitude: update.max_altitude ?? base.max_altitude,
    geofence: {
      enabled: update.geofence?.enabled ?? base.geofence.enabled,
      center: update.geofence?.center ?? base.geofence.center,
      radius: update.geofence?.radius ?? base.geofence.radius,
    },
    safety_settings: {
      battery_low_threshold:
        update.safety_settings?.battery_low_threshold ?? base.safety_settings.battery_low_threshold,
      auto_land_enabled: update.safety_settings?.auto_land_enabled ?? base.safety_settings.auto_land_enabled,
    },
  };
}

const airborne = (s: FcSimState) => s.flight !== "landed" && !(s.flight === "emergency" && s.altitude === 0);

/** An alert's details: the battery, and the flying time left at the current drain (seconds). */
function batteryDetails(s: FcSimState, drainPerSecond: number): Record<string, number> {
  const details: Record<string, number> = { battery_level: round(s.battery, 1) };
  // Without drain there is no estimate; Infinity is not JSON, so the field is left out.
  if (drainPerSecond > 0) details.estimated_flight_time = Math.round(s.battery / drainPerSecond);
  return details;
}

/**
 * A HEAR_FC flight-controller simulator. Spawn it (`system.spawn(hearFc())`, or as a
 * supervisor's child) and talk to it with `system.ref<HearFcProtocol>(id)` or `groundControl`.
 */
export function hearFc(options: HearFcOptions = {}): ActorDefinition<HearFcActorProtocol, FcSimState> {
  const id = options.id ?? "HEAR_FC";
  const controllerId = options.controllerId ?? "petal-app-manager";
  const telemetryHz = options.telemetryHz ?? 1;
  const home = options.home ?? { lat: 37.7749, lon: -122.4194 };
  const drain = options.batteryDrainPerSecond ?? 0.1;
  const timeScale = options.timeScale ?? 1;
  const commandLatencyMs = options.commandLatencyMs ?? 0;
  const initialConfig = mergeConfiguration(
    {
      flight_mode: "manual",
      max_altitude: 120,
      geofence: { enabled: false, center: home, radius: 1000 },
      safety_settings: { battery_low_threshold: 20, auto_land_enabled: true },
    },
    options.configuration ?? {},
  );
  if (!(telemetryHz >= 0)) throw new RangeError(`hearFc: telemetryHz must be >= 0, got ${telemetryHz}`);
  if (!(timeScale > 0)) throw new RangeError(`hearFc: timeScale must be > 0, got ${timeScale}`);

  type Ctx = ActorContext<HearFcActorProtocol, FcSimState>;

  /** Advances the simulation to now; returns the alerts it raised, with their priority. */
  function step(s: FcSimState): { alert: FcAlert; priority: Priority }[] {
    const now = Date.now();
    const dt = ((now - s.lastStep) / 1000) * timeScale;
    s.lastStep = now;
    if (dt <= 0) return [];
    let dz = 0;
    let dxy = 0;
    if (s.altitude !== s.targetAltitude) {
      dz = Math.min(Math.abs(s.targetAltitude - s.altitude), s.verticalSpeed * dt);
      s.altitude += Math.sign(s.targetAltitude - s.altitude) * dz;
      if (Math.abs(s.altitude - s.targetAltitude) < 1e-6) s.altitude = s.targetAltitude;
    }
    if (s.target && (s.flight === "flying" || s.flight === "taking_off")) {
      const left = distanceMetres(s.position, s.target);
      dxy = Math.min(left, s.horizontalSpeed * dt);
      if (left <= dxy || left < 0.01) {
        s.position = { ...s.target };
        s.target = null;
      } else {
        const f = dxy / left;
        s.position = {
          lat: s.position.lat + (s.target.lat - s.position.lat) * f,
          lon: s.position.lon + (s.target.lon - s.position.lon) * f,
        };
      }
    }
    s.speed = Math.hypot(dz, dxy) / dt;
    // A goto sent during the climb is still under way when the climb ends.
    if (s.flight === "taking_off" && s.altitude === s.targetAltitude)
      s.flight = s.target ? "flying" : "hovering";
    if (s.flight === "flying" && !s.target && s.altitude === s.targetAltitude) s.flight = "hovering";
    if ((s.flight === "landing" || s.flight === "emergency") && s.altitude === 0) {
      if (s.flight === "landing") s.flight = "landed";
      s.armed = false;
    }
    if (!airborne(s)) return [];
    s.battery = Math.max(0, s.battery - drain * dt);

    const alerts: { alert: FcAlert; priority: Priority }[] = [];
    const threshold = s.config.safety_settings.battery_low_threshold;
    if (!s.lowAlertSent && s.battery < threshold) {
      s.lowAlertSent = true;
      const autoLand = s.config.safety_settings.auto_land_enabled && s.flight !== "emergency";
      if (autoLand) startLanding(s, 1);
      alerts.push({
        priority: Priority.HIGH,
        alert: {
          severity: "warning",
          code: "low_battery",
          message: autoLand ? "Low battery warning: landing automatically" : "Low battery warning",
          details: batteryDetails(s, drain),
        },
      });
    }
    if (!s.criticalAlertSent && s.battery < threshold / 2) {
      s.criticalAlertSent = true;
      if (s.flight !== "emergency") startLanding(s, 2);
      alerts.push({
        priority: Priority.CRITICAL,
        alert: {
          severity: "critical",
          code: "critical_battery",
          message: "Critical battery: landing now",
          details: batteryDetails(s, drain),
        },
      });
    }
    return alerts;
  }

  function startLanding(s: FcSimState, verticalSpeed: number): void {
    s.flight = "landing";
    s.target = null;
    s.targetAltitude = 0;
    s.verticalSpeed = verticalSpeed;
  }

  function telemetry(s: FcSimState): FcTelemetry {
    const threshold = s.config.safety_settings.battery_low_threshold;
    const status =
      s.flight === "emergency"
        ? "emergency"
        : s.battery < threshold / 2
          ? "critical"
          : s.battery < threshold
            ? "warning"
            : "normal";
    return {
      timestamp: Date.now() / 1000,
      battery_level: round(s.battery, 1),
      gps_coordinates: { lat: round(s.position.lat, 7), lon: round(s.position.lon, 7) },
      altitude: round(s.altitude),
      speed: round(s.speed),
      system_status: status,
      flight_state: s.flight,
      armed: s.armed,
    };
  }

  /** Advances the simulation and tells the controller about the alerts that raised. */
  async function advance(ctx: Ctx): Promise<void> {
    const alerts = step(ctx.state);
    if (alerts.length === 0) return;
    const controller = ctx.ref<FcControllerProtocol>(controllerId);
    for (const { alert, priority } of alerts) await controller.tell("alert", alert, { priority });
  }

  /**
   * Telemetry is driven by a tick the actor sends itself: setup has no way to send as the
   * actor (only handlers get `ctx.ref`), and a tick through the inbox stops by itself when the
   * actor does. The next tick is scheduled only after one is handled, so a busy controller
   * slows telemetry down instead of piling ticks up.
   */
  function scheduleTick(self: ActorRef<HearFcActorProtocol>, incarnation: string, delayMs: number): void {
    const timer = setTimeout(() => {
      self.tell("sim_tick", { incarnation }, { priority: Priority.LOW }).catch((err: unknown) => {
        if (err instanceof SystemStoppedError) return;
        // Redis refused the send: try again later rather than let telemetry stop for good.
        scheduleTick(self, incarnation, delayMs);
      });
    }, delayMs);
    // A pending tick must not keep the process alive after the system shut down.
    timer.unref();
  }

  function refuse(cmd: FcCommand, message: string): FcCommandResponse {
    return { command_id: cmd.command_id, command: cmd.command, status: "failed", message };
  }

  function runCommand(s: FcSimState, cmd: FcCommand): FcCommandResponse {
    const ok = (message: string): FcCommandResponse => ({
      command_id: cmd.command_id,
      command: cmd.command,
      status: "success",
      message,
    });
    const threshold = s.config.safety_settings.battery_low_threshold;
    switch (cmd.command) {
      case "emergency_stop": {
        const immediate = cmd.parameters?.immediate ?? true;
        s.flight = "emergency";
        s.target = null;
        s.targetAltitude = 0;
        s.verticalSpeed = 3;
        if (immediate) {
          s.altitude = 0;
          s.armed = false;
        }
        return ok(immediate ? "motors stopped" : "descending fast, motors stop on the ground");
      }
      case "takeoff": {
        const target = cmd.parameters?.altitude ?? 10;
        if (s.flight === "emergency" && s.altitude > 0) return refuse(cmd, "emergency stop in effect");
        if (s.flight !== "landed" && s.flight !== "emergency") return refuse(cmd, `already ${s.flight}`);
        if (s.battery < threshold) {
          return refuse(cmd, `battery ${round(s.battery, 1)}% is below the ${threshold}% minimum`);
        }
        if (target > s.config.max_altitude) {
          return refuse(cmd, `altitude ${target} m is above the ${s.config.max_altitude} m ceiling`);
        }
        s.flight = "taking_off";
        s.armed = true;
        s.targetAltitude = target;
        s.verticalSpeed = cmd.parameters?.speed ?? 2;
        s.lowAlertSent = false;
        s.criticalAlertSent = false;
        return ok(`taking off to ${target} m`);
      }
      case "land": {
        if (s.flight === "emergency") return refuse(cmd, "emergency stop in effect");
        if (!airborne(s)) return refuse(cmd, "not airborne");
        startLanding(s, cmd.parameters?.speed ?? 1);
        return ok("landing");
      }
      case "goto": {
        if (s.flight === "emergency") return refuse(cmd, "emergency stop in effect");
        if (!airborne(s) || s.flight === "landing")
          return refuse(cmd, `cannot go anywhere while ${s.flight}`);
        const p = cmd.parameters;
        const alt = p.altitude ?? s.targetAltitude;
        if (alt > s.config.max_altitude) {
          return refuse(cmd, `altitude ${alt} m is above the ${s.config.max_altitude} m ceiling`);
        }
        const fence = s.config.geofence;
        const point = { lat: p.lat, lon: p.lon };
        if (fence.enabled && distanceMetres(fence.center, point) > fence.radius) {
          const off = Math.round(distanceMetres(fence.center, point));
          return refuse(cmd, `target is ${off} m from the geofence centre, outside its ${fence.radius} m`);
        }
        s.target = point;
        s.targetAltitude = alt;
        s.horizontalSpeed = p.speed ?? 5;
        s.verticalSpeed = Math.max(s.verticalSpeed, 2);
        if (s.flight !== "taking_off") s.flight = "flying";
        return ok(
          `flying ${Math.round(distanceMetres(s.position, point))} m to ${round(p.lat, 6)}, ${round(p.lon, 6)}`,
        );
      }
      case "hover": {
        if (s.flight === "emergency") return refuse(cmd, "emergency stop in effect");
        if (!airborne(s) || s.flight === "landing") return refuse(cmd, `cannot hover while ${s.flight}`);
        s.target = null;
        s.targetAltitude = s.altitude;
        s.flight = "hovering";
        return ok(`hovering at ${round(s.altitude, 1)} m`);
      }
    }
  }

  return defineActor<HearFcActorProtocol, FcSimState>({
    id,
    claimBatch: options.claimBatch ?? 1,
    replyTypes: HEAR_FC_REPLY_TYPES,
    schemas: {
      command: FcCommandSchema,
      configuration: FcConfigurationSchema,
      health_check: FcHealthCheckSchema,
      telemetry_request: FcTelemetryRequestSchema,
      sim_tick: z.object({ incarnation: z.string() }),
    },
    setup: (ctx) => {
      const now = Date.now();
      const state: FcSimState = {
        incarnation: randomUUID(),
        startedAt: now,
        lastStep: now,
        flight: "landed",
        armed: false,
        position: { ...home },
        altitude: 0,
        targetAltitude: 0,
        target: null,
        horizontalSpeed: 0,
        verticalSpeed: 0,
        speed: 0,
        battery: options.battery ?? 100,
        config: initialConfig,
        lowAlertSent: false,
        criticalAlertSent: false,
      };
      // The first tick waits one period: sent during setup it could beat the subscription to
      // this actor's channel, and then it would wait for the runtime's next inbox sweep.
      if (telemetryHz > 0) scheduleTick(ctx.self, state.incarnation, 1000 / telemetryHz);
      return state;
    },
    handlers: {
      command: async (cmd, ctx) => {
        if (commandLatencyMs > 0 && cmd.command !== "emergency_stop") {
          await new Promise((resolve) => setTimeout(resolve, commandLatencyMs));
        }
        await advance(ctx);
        const response = runCommand(ctx.state, cmd);
        ctx.log.debug({ command: cmd.command, status: response.status }, response.message ?? "");
        return response;
      },
      configuration: async (update, ctx) => {
        await advance(ctx);
        const s = ctx.state;
        const next = mergeConfiguration(s.config, update);
        const echo = update.config_id === undefined ? {} : { config_id: update.config_id };
        if (airborne(s) && next.max_altitude < s.altitude) {
          return {
            ...echo,
            status: "rejected",
            message: `max_altitude ${next.max_altitude} m is below the current altitude ${round(s.altitude, 1)} m`,
            configuration: s.config,
          };
        }
        s.config = next;
        return { ...echo, status: "applied", configuration: next };
      },
      health_check: async (request, ctx) => {
        await advance(ctx);
        const s = ctx.state;
        const threshold = s.config.safety_settings.battery_low_threshold;
        const battery = s.battery < threshold / 2 ? "critical" : s.battery < threshold ? "low" : "ok";
        const motors = s.flight === "emergency" ? "stopped" : "ok";
        const status =
          battery === "critical" || motors === "stopped"
            ? "critical"
            : battery === "low"
              ? "degraded"
              : "healthy";
        return {
          ...(request.check_id === undefined ? {} : { check_id: request.check_id }),
          status,
          battery_level: round(s.battery, 1),
          flight_state: s.flight,
          armed: s.armed,
          uptime: round((Date.now() - s.startedAt) / 1000, 1),
          checks: { battery, gps: "ok", motors, geofence: s.config.geofence.enabled ? "ok" : "disabled" },
          timestamp: Date.now() / 1000,
        };
      },
      telemetry_request: async (_request, ctx) => {
        await advance(ctx);
        return telemetry(ctx.state);
      },
      sim_tick: async (tick, ctx) => {
        // A tick of an earlier incarnation (or process) ends its chain here.
        if (tick.incarnation !== ctx.state.incarnation) return;
        await advance(ctx);
        const sample = telemetry(ctx.state);
        await ctx
          .ref<FcControllerProtocol>(controllerId)
          .tell("telemetry", sample, { priority: Priority.NORMAL });
        scheduleTick(ctx.self, ctx.state.incarnation, 1000 / telemetryHz);
      },
    },
  });
}

/**
 * The simulator with its defaults (app id `HEAR_FC`), so that the file runs as it is:
 * `npx redactor run actors/hear-fc.ts`.
 */
export default hearFc();
