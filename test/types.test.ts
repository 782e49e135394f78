/**
 * Type-level tests of the typed API: these lines are checked by `tsc` (part of `npm test`);
 * every @ts-expect-error must be a real compile error or the type check fails.
 */
import { describe, expectTypeOf, it } from "vitest";
import {
  type ActorRef,
  type ActorSystem,
  defineActor,
  type Envelope,
  type FamilyDefinition,
  type FamilyRef,
  Priority,
} from "../src/index.js";

type FcProtocol = {
  command: {
    payload: { command_id: string; command: "takeoff" | "land"; parameters?: { altitude?: number } };
    reply: { command_id: string; status: "success" | "failed" | "error"; message?: string };
  };
  telemetry: { payload: { battery_level: number; altitude: number } };
};

declare const system: ActorSystem;

// These functions are never called; they only have to compile (or fail to, where marked).
async function typedRefs() {
  const ref = system.ref<FcProtocol>("HEAR_FC");
  const reply = await ref.ask("command", { command_id: "c1", command: "takeoff" }, { timeoutMs: 5_000 });
  expectTypeOf(reply).toEqualTypeOf<FcProtocol["command"]["reply"]>();
  expectTypeOf(await ref.tell("telemetry", { battery_level: 80, altitude: 12 })).toEqualTypeOf<string>();

  // @ts-expect-error unknown message type
  await ref.tell("fly", {});
  // @ts-expect-error wrong payload: command must be "takeoff" | "land"
  await ref.tell("command", { command_id: "c1", command: "loop" });
  // @ts-expect-error missing field
  await ref.tell("telemetry", { battery_level: 80 });
  // @ts-expect-error telemetry declares no reply: it cannot be asked
  await ref.ask("telemetry", { battery_level: 80, altitude: 1 });
  // @ts-expect-error priority must be one of the four
  await ref.tell("telemetry", { battery_level: 80, altitude: 1 }, { priority: 7 });
  await ref.tell("telemetry", { battery_level: 80, altitude: 1 }, { priority: Priority.LOW });
  // @ts-expect-error the reply is not a string
  const wrong: string = await ref.ask("command", { command_id: "c", command: "land" });
  void wrong;
  await ref.ask(
    "command",
    { command_id: "c", command: "land" },
    { match: (m: Envelope) => m.reply_to === null },
  );
}

function typedHandlers() {
  defineActor<FcProtocol, { altitude: number }>({
    id: "HEAR_FC",
    setup: () => ({ altitude: 0 }),
    handlers: {
      command: (payload, ctx) => {
        expectTypeOf(payload.command).toEqualTypeOf<"takeoff" | "land">();
        expectTypeOf(ctx.state.altitude).toEqualTypeOf<number>();
        expectTypeOf(ctx.self).toEqualTypeOf<ActorRef<FcProtocol>>();
        return { command_id: payload.command_id, status: "success" };
      },
      telemetry: async (payload) => {
        expectTypeOf(payload.battery_level).toEqualTypeOf<number>();
      },
    },
  });

  defineActor<FcProtocol>({
    id: "HEAR_FC",
    handlers: {
      // @ts-expect-error the reply must carry command_id and a valid status
      command: () => ({ status: "ok" }),
      telemetry: () => {},
    },
  });

  // @ts-expect-error a handler for every message type of the protocol
  defineActor<FcProtocol>({ id: "x", handlers: { telemetry: () => {} } });

  defineActor<FcProtocol, { n: number }>({
    id: "x",
    // @ts-expect-error setup must return the declared state
    setup: () => ({ n: "zero" }),
    handlers: { command: (p) => ({ command_id: p.command_id, status: "error" }), telemetry: () => {} },
  });
}

async function typedFamilies() {
  const family = defineActor<FcProtocol, { n: number }>({
    family: "drone",
    idleMs: 30_000,
    setup: () => ({ n: 0 }),
    handlers: {
      command: (payload, ctx) => {
        expectTypeOf(ctx.state.n).toEqualTypeOf<number>();
        return { command_id: payload.command_id, status: "success" };
      },
      telemetry: () => {},
    },
  });
  expectTypeOf(family).toEqualTypeOf<FamilyDefinition<FcProtocol, { n: number }>>();
  const drones = await system.spawn(family);
  expectTypeOf(drones).toEqualTypeOf<FamilyRef<FcProtocol>>();
  const reply = await drones.ref("42").ask("command", { command_id: "c", command: "land" });
  expectTypeOf(reply).toEqualTypeOf<FcProtocol["command"]["reply"]>();
  // @ts-expect-error a family's handlers are typed by its protocol too
  await drones.ref("42").tell("telemetry", { battery_level: "full", altitude: 1 });
  // @ts-expect-error a family has no id: it serves every "<family>:<key>"
  defineActor<FcProtocol>({
    family: "drone",
    id: "x",
    handlers: { command: (p) => ({ command_id: p.command_id, status: "error" }), telemetry: () => {} },
  });
  const actor = await system.spawn(
    defineActor<FcProtocol>({
      id: "HEAR_FC",
      handlers: { command: (p) => ({ command_id: p.command_id, status: "error" }), telemetry: () => {} },
    }),
  );
  expectTypeOf(actor).toEqualTypeOf<ActorRef<FcProtocol>>();
  const activation = "many";
  // @ts-expect-error activation is "single" or "shared"
  defineActor<FcProtocol>({
    id: "HEAR_FC",
    activation,
    handlers: { command: (p) => ({ command_id: p.command_id, status: "error" }), telemetry: () => {} },
  });
}

function typedPersist() {
  type Ctr = { inc: { payload: { by: number } } };
  defineActor<Ctr, { count: number }>({
    id: "counter",
    persist: true,
    setup: (ctx) => {
      expectTypeOf(ctx.saved).toEqualTypeOf<{ count: number } | undefined>();
      return ctx.saved ?? { count: 0 };
    },
    handlers: {
      inc: (p, ctx) => {
        // Changed in place or assigned: both are the state.
        ctx.state.count += p.by;
        ctx.state = { count: ctx.state.count };
      },
    },
  });
  defineActor<Ctr, { total: number }>({
    id: "counter",
    persist: {
      version: 2,
      maxBytes: 4096,
      migrate: (old, fromVersion) => {
        expectTypeOf(old).toEqualTypeOf<unknown>();
        expectTypeOf(fromVersion).toEqualTypeOf<number>();
        return { total: (old as { count: number }).count };
      },
    },
    setup: (ctx) => ctx.saved ?? { total: 0 },
    handlers: { inc: () => {} },
  });
  defineActor<Ctr, { total: number }>({
    id: "counter",
    // @ts-expect-error migrate returns the state type
    persist: { version: 2, migrate: () => ({ total: "none" }) },
    handlers: { inc: () => {} },
  });
  defineActor<Ctr, { total: number }>({
    id: "counter",
    // @ts-expect-error persist is a boolean or PersistOptions
    persist: "yes",
    handlers: { inc: () => {} },
  });
}

describe("typed API", () => {
  it("is checked at compile time", () => {
    expectTypeOf(typedPersist).toBeFunction();
    expectTypeOf(typedRefs).toBeFunction();
    expectTypeOf(typedHandlers).toBeFunction();
    expectTypeOf(typedFamilies).toBeFunction();
  });
});
