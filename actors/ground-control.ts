/**
 * Ground control: the app-manager side of the drone link. The actor collects what the flight
 * controller sends unasked (telemetry, alerts, and replies that no request is waiting for), and
 * answers `state` with the latest picture; the handle sends commands, configuration and health
 * checks as asks and keeps their outcomes in the same picture.
 *
 * The requests are sent from the handle, not from inside a handler: a handler that waited for
 * the flight controller's reply would keep this actor's inbox blocked meanwhile, so telemetry,
 * alerts and, above all, an emergency stop would wait behind a slow command.
 */
import { randomUUID } from "node:crypto";
import {
  type ActorDefinition,
  type ActorSystem,
  AskTimeoutError,
  defineActor,
  type Envelope,
  Priority,
} from "redactor";
import { z } from "zod";
import {
  type FcAlert,
  FcAlertSchema,
  type FcCommand,
  type FcCommandResponse,
  type FcConfiguration,
  type FcConfigurationAck,
  type FcEffectiveConfiguration,
  type FcHealthResponse,
  type FcTelemetry,
  FcTelemetrySchema,
  type HearFcProtocol,
} from "./hear-fc.js";

/** A command as ground control takes it: `command_id` is generated when left out. */
export type FcCommandRequest = FcCommand extends infer C
  ? C extends FcCommand
    ? Omit<C, "command_id"> & { command_id?: string }
    : never
  : never;

/** What ground control remembers of one command. */
export interface CommandRecord {
  command_id: string;
  command: string;
  priority: Priority;
  /** `sent` until the reply comes; `timeout` when none came in time. */
  status: "sent" | FcCommandResponse["status"] | "timeout";
  message?: string;
  /** Unix seconds. */
  sent_at: number;
  /** Round trip, ms. */
  latency_ms?: number;
}

/** An alert as it was received. */
export interface ReceivedAlert {
  alert: FcAlert;
  priority: Priority;
  sender: string;
  /** Unix seconds. */
  received_at: number;
}

/** The latest picture of the flight controller, as `getState()` and the `state` reply give it. */
export interface GroundControlState {
  fc_id: string;
  /** The latest telemetry sample, pushed or requested. */
  telemetry: FcTelemetry | null;
  telemetry_received: number;
  /** Unix seconds. */
  last_telemetry_at: number | null;
  /** Latest last, at most `maxAlerts`. */
  alerts: ReceivedAlert[];
  alerts_received: number;
  health: FcHealthResponse | null;
  /** The configuration the controller last acknowledged. */
  configuration: FcEffectiveConfiguration | null;
  /** Latest last, at most `maxCommands`. */
  commands: CommandRecord[];
}

/** What the ground-control actor handles. */
export type GroundControlProtocol = {
  telemetry: { payload: FcTelemetry };
  alert: { payload: FcAlert };
  /** Replies that arrive with no request waiting (a told command, a late reply, a peer without reply_to). */
  command_response: { payload: FcCommandResponse };
  configuration_ack: { payload: FcConfigurationAck };
  health_response: { payload: FcHealthResponse };
  /** Answers with the latest state. */
  state: { payload: Record<string, never>; reply: GroundControlState };
};

/** Options of the handle's requests. */
export interface RequestOptions {
  /**
   * Priority of the request.
   * @default CRITICAL for emergency_stop, HIGH for other commands and configuration, NORMAL for health and telemetry requests
   */
  priority?: Priority;
  /**
   * How long to wait for the reply, ms.
   * @default the handle's requestTimeoutMs
   */
  timeoutMs?: number;
}

/** Options of `groundControl`. */
export interface GroundControlOptions {
  /**
   * The app id: where the flight controller sends telemetry and alerts.
   * @default "petal-app-manager"
   */
  id?: string;
  /**
   * The flight controller's app id.
   * @default "HEAR_FC"
   */
  fcId?: string;
  /**
   * Default reply timeout of the requests, ms.
   * @default 5000
   */
  requestTimeoutMs?: number;
  /**
   * Alerts kept in the state.
   * @default 100
   */
  maxAlerts?: number;
  /**
   * Commands kept in the state.
   * @default 100
   */
  maxCommands?: number;
  /**
   * Called with each telemetry sample received (pushed, not requested).
   * @default undefined
   */
  onTelemetry?: (telemetry: FcTelemetry, message: Envelope) => void;
  /**
   * Called with each alert received.
   * @default undefined
   */
  onAlert?: (alert: FcAlert, message: Envelope) => void;
  /**
   * Called with every message the actor handles, after its state was updated.
   * @default undefined
   */
  onMessage?: (message: Envelope) => void;
}

/** A ground control: the actor to spawn, and the operator's side of it. */
export interface GroundControl {
  /** Spawn this (`system.spawn`, or as a supervisor's child) before sending requests. */
  readonly definition: ActorDefinition<GroundControlProtocol, undefined>;
  readonly id: string;
  readonly fcId: string;
  /** Sends a command and resolves with the `command_response`; rejects with AskTimeoutError. */
  command(command: FcCommandRequest, options?: RequestOptions): Promise<FcCommandResponse>;
  /** Sends a configuration update and resolves with the `configuration_ack`. */
  configure(configuration: FcConfiguration, options?: RequestOptions): Promise<FcConfigurationAck>;
  /** Asks for a health check. */
  checkHealth(options?: RequestOptions): Promise<FcHealthResponse>;
  /** Asks for one telemetry sample now. */
  requestTelemetry(options?: RequestOptions): Promise<FcTelemetry>;
  /** A copy of the latest state. */
  getState(): GroundControlState;
}

const replySchemas = {
  command_response: z.looseObject({
    command_id: z.string(),
    command: z.enum(["takeoff", "land", "goto", "hover", "emergency_stop"]).optional(),
    status: z.enum(["success", "failed", "error"]),
    message: z.string().optional(),
  }),
  configuration_ack: z.looseObject({
    config_id: z.string().optional(),
    status: z.enum(["applied", "rejected"]),
    message: z.string().optional(),
    configuration: z.looseObject({
      flight_mode: z.string(),
      max_altitude: z.number(),
      geofence: z.object({
        enabled: z.boolean(),
        center: z.object({ lat: z.number(), lon: z.number() }),
        radius: z.number(),
      }),
      safety_settings: z.object({ battery_low_threshold: z.number(), auto_land_enabled: z.boolean() }),
    }),
  }),
  health_response: z.looseObject({
    check_id: z.string().optional(),
    status: z.enum(["healthy", "degraded", "critical"]),
    battery_level: z.number(),
    flight_state: z.enum(["landed", "taking_off", "flying", "hovering", "landing", "emergency"]),
    armed: z.boolean(),
    uptime: z.number(),
    checks: z.object({
      battery: z.enum(["ok", "low", "critical"]),
      gps: z.literal("ok"),
      motors: z.enum(["ok", "stopped"]),
      geofence: z.enum(["ok", "disabled"]),
    }),
    timestamp: z.number(),
  }),
};

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null;
}

/** Creates a ground control for one flight controller. */
export function groundControl(options: GroundControlOptions = {}): GroundControl {
  const id = options.id ?? "petal-app-manager";
  const fcId = options.fcId ?? "HEAR_FC";
  const requestTimeoutMs = options.requestTimeoutMs ?? 5000;
  const maxAlerts = options.maxAlerts ?? 100;
  const maxCommands = options.maxCommands ?? 100;
  let system: ActorSystem | undefined;

  // The picture outlives restarts of the actor on purpose: an operator's view should not go
  // blank because the actor behind it was restarted.
  const state: GroundControlState = {
    fc_id: fcId,
    telemetry: null,
    telemetry_received: 0,
    last_telemetry_at: null,
    alerts: [],
    alerts_received: 0,
    health: null,
    configuration: null,
    commands: [],
  };

  const now = () => Date.now() / 1000;

  function recordTelemetry(t: FcTelemetry): void {
    state.telemetry = t;
    state.last_telemetry_at = now();
  }

  function recordResponse(r: FcCommandResponse, latencyMs?: number): void {
    let record: CommandRecord | undefined;
    for (let i = state.commands.length - 1; i >= 0 && !record; i--) {
      if (state.commands[i]?.command_id === r.command_id) record = state.commands[i];
    }
    if (!record) {
      state.commands.push({
        command_id: r.command_id,
        command: r.command ?? "unknown",
        priority: Priority.HIGH,
        status: r.status,
        ...(r.message === undefined ? {} : { message: r.message }),
        sent_at: now(),
      });
      trim(state.commands, maxCommands);
      return;
    }
    record.status = r.status;
    if (r.message !== undefined) record.message = r.message;
    if (latencyMs !== undefined) record.latency_ms = Math.round(latencyMs * 100) / 100;
  }

  function trim<T>(list: T[], max: number): void {
    if (list.length > max) list.splice(0, list.length - max);
  }

  function fc() {
    if (!system) {
      throw new Error(
        `ground control "${id}" is not running: spawn its definition (system.spawn(gc.definition)) first`,
      );
    }
    return system.ref<HearFcProtocol>(fcId);
  }

  /** Runs a hook; a broken hook must not fail (and dead-letter) the message it observes. */
  function safely(ctxLog: { error: (obj: object, msg: string) => void }, hook: () => void): void {
    try {
      hook();
    } catch (err) {
      ctxLog.error({ err }, "a ground-control hook threw; fix the hook");
    }
  }

  const definition = defineActor<GroundControlProtocol, undefined>({
    id,
    schemas: {
      telemetry: FcTelemetrySchema,
      alert: FcAlertSchema,
      ...replySchemas,
      state: z.object({}),
    },
    setup: (ctx) => {
      system = ctx.system;
      return undefined;
    },
    handlers: {
      telemetry: (t, ctx) => {
        recordTelemetry(t);
        state.telemetry_received += 1;
        if (options.onTelemetry) safely(ctx.log, () => options.onTelemetry?.(t, ctx.message));
        if (options.onMessage) safely(ctx.log, () => options.onMessage?.(ctx.message));
      },
      alert: (alert, ctx) => {
        state.alerts.push({
          alert,
          priority: ctx.message.priority,
          sender: ctx.message.sender,
          received_at: now(),
        });
        state.alerts_received += 1;
        trim(state.alerts, maxAlerts);
        if (options.onAlert) safely(ctx.log, () => options.onAlert?.(alert, ctx.message));
        if (options.onMessage) safely(ctx.log, () => options.onMessage?.(ctx.message));
      },
      command_response: (r, ctx) => {
        recordResponse(r);
        if (options.onMessage) safely(ctx.log, () => options.onMessage?.(ctx.message));
      },
      configuration_ack: (ack, ctx) => {
        if (ack.status === "applied") state.configuration = ack.configuration;
        if (options.onMessage) safely(ctx.log, () => options.onMessage?.(ctx.message));
      },
      health_response: (health, ctx) => {
        state.health = health;
        if (options.onMessage) safely(ctx.log, () => options.onMessage?.(ctx.message));
      },
      state: (_payload, ctx) => {
        if (options.onMessage) safely(ctx.log, () => options.onMessage?.(ctx.message));
        return structuredClone(state);
      },
    },
  });

  return {
    definition,
    id,
    fcId,

    async command(request, opts = {}) {
      const ref = fc();
      const command = {
        ...request,
        command_id: request.command_id ?? `cmd_${randomUUID().slice(0, 8)}`,
      } as FcCommand;
      const priority =
        opts.priority ?? (command.command === "emergency_stop" ? Priority.CRITICAL : Priority.HIGH);
      const record: CommandRecord = {
        command_id: command.command_id,
        command: command.command,
        priority,
        status: "sent",
        sent_at: now(),
      };
      state.commands.push(record);
      trim(state.commands, maxCommands);
      const started = performance.now();
      try {
        const response = await ref.ask("command", command, {
          priority,
          timeoutMs: opts.timeoutMs ?? requestTimeoutMs,
          // Controllers written to the C++ guide reply without reply_to: match by command_id.
          match: (m) =>
            m.message_type === "command_response" &&
            m.sender === fcId &&
            isRecord(m.payload) &&
            m.payload.command_id === command.command_id,
        });
        recordResponse(response, performance.now() - started);
        return response;
      } catch (err) {
        record.status = err instanceof AskTimeoutError ? "timeout" : "error";
        record.message = (err as Error).message;
        throw err;
      }
    },

    async configure(configuration, opts = {}) {
      const ack = await fc().ask("configuration", configuration, {
        priority: opts.priority ?? Priority.HIGH,
        timeoutMs: opts.timeoutMs ?? requestTimeoutMs,
      });
      if (ack.status === "applied") state.configuration = ack.configuration;
      return ack;
    },

    async checkHealth(opts = {}) {
      const health = await fc().ask(
        "health_check",
        {},
        { priority: opts.priority ?? Priority.NORMAL, timeoutMs: opts.timeoutMs ?? requestTimeoutMs },
      );
      state.health = health;
      return health;
    },

    async requestTelemetry(opts = {}) {
      const sample = await fc().ask(
        "telemetry_request",
        {},
        { priority: opts.priority ?? Priority.NORMAL, timeoutMs: opts.timeoutMs ?? requestTimeoutMs },
      );
      recordTelemetry(sample);
      return sample;
    },

    getState() {
      return structuredClone(state);
    },
  };
}

/**
 * A ground control's actor with its defaults (app id `petal-app-manager`, talking to `HEAR_FC`),
 * so that the file runs as it is: `npx redactor run actors/ground-control.ts`. It records the
 * replies, telemetry and alerts it receives; the operator's side (`command`, `configure` …) needs
 * the handle, so call `groundControl()` in code for that.
 */
export default groundControl().definition;
