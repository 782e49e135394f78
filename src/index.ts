/** redactor: an actor runtime whose mailboxes live in Redis. */
export type {
  ActorContext,
  ActorDefinition,
  ActorRef,
  AskableType,
  AskOptions,
  FailureDirective,
  FamilyDefinition,
  FamilyRef,
  Handler,
  HandlerResult,
  MessageSpec,
  PayloadOf,
  Protocol,
  ReplyOf,
  RestartType,
  SavedState,
  SetupContext,
  TellOptions,
  UntypedProtocol,
} from "./actor.js";
export { DEFAULT_MAX_ATTEMPTS, DEFAULT_RETRY_BACKOFF, defineActor } from "./actor.js";
export type { BackoffOptions } from "./backoff.js";
export { type HostClock, realTime, SimulatedClock, type TimerHandle } from "./clock.js";
export { type DashboardOptions, type DashboardServer, serveDashboard } from "./dashboard/server.js";
export type { Envelope } from "./envelope.js";
export {
  decodeEnvelope,
  encodeEnvelope,
  MAX_PAYLOAD_DEPTH,
  newMessageId,
  PAYLOAD_META_FIELD,
  payloadEncoding,
} from "./envelope.js";
export { ERROR_REPLY_PREFIX, type ErrorReplyPayload } from "./error-replies.js";
export {
  ActivationConflictError,
  AppInUseError,
  AskFailedError,
  AskTimeoutError,
  DashboardError,
  DuplicateActorError,
  EnvelopeError,
  EvictionPolicyError,
  HandlerTimeoutError,
  HeartbeatError,
  IllegalTransitionError,
  InvalidIdError,
  type InvalidIdRule,
  InvalidOptionError,
  MessageTooLargeError,
  RedactorError,
  RedisAuthError,
  RedisCommandError,
  RedisDatabaseError,
  RedisMaxClientsError,
  RedisTlsError,
  RedisUnavailableError,
  ReplicationError,
  StateLoadError,
  StateNotSavedError,
  StateTooLargeError,
  SystemStoppedError,
  TimerScriptError,
  UnserializableValueError,
} from "./errors.js";
export { SystemEventEmitter, type SystemEventName, type SystemEvents } from "./events.js";
export {
  executeForget,
  executeGc,
  type ForgetPlan,
  type GcAction,
  type GcOptions,
  type GcPlan,
  planForget,
  planGc,
} from "./hygiene.js";
export { MAX_ID_BYTES, RESERVED_IDS } from "./ids.js";
export { Keyspace, type KeyspaceOptions } from "./keyspace.js";
export {
  ENTRY_STATUSES,
  type LifecycleEvent,
  lifecycleMachine,
  type MessageStatus,
  nextStatus,
} from "./lifecycle.js";
export type { Durability, MailboxOptions } from "./mailbox.js";
export { MAX_SCHEDULE_MS } from "./options.js";
export type { AppStatus } from "./presence.js";
export { Priority } from "./priority.js";
export {
  type CancelOutcome,
  listScheduled,
  type PromoteResult,
  type ScheduledMessage,
} from "./scheduler.js";
export type { StandardSchemaV1 } from "./schema.js";
export { DEFAULT_MAX_STATE_BYTES, DEFAULT_STATE_VERSION, type PersistOptions } from "./state.js";
export {
  type ChildSpec,
  RestartIntensityError,
  type SupervisorOptions,
  type SupervisorRef,
  type SupervisorSpec,
  type SupervisorStrategy,
  supervisor,
} from "./supervisor.js";
export {
  type ActorSystem,
  type BroadcastOptions,
  type ClusterConfig,
  createSystem,
  type SpawnedRef,
  type SystemOptions,
} from "./system.js";
export {
  MAX_CATCH_UP_TICKS,
  MAX_EVERY_MS,
  MIN_EVERY_MS,
  type MissedTicks,
  type TimerInfo,
  type TimerOptions,
  type TimerSchedule,
  type TimerStartOptions,
  type TimerStartOutcome,
  type Timers,
} from "./timers.js";
export type { TracerLike, TracingOption } from "./tracing.js";
// Observability: prom-client metrics built from system.events, and a /metrics endpoint.

export {
  createMetrics,
  MetricsError,
  type MetricsOptions,
  type MetricsServer,
  type RedactorMetrics,
  type ServeMetricsOptions,
  serveMetrics,
} from "./metrics.js";
