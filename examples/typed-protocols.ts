/**
 * Typed protocols with schemas.
 *
 * The protocol type makes every `tell`, `ask` and handler type-checked: a wrong message type,
 * payload or reply does not compile. But senders are not all TypeScript: a Python peer, the CLI
 * or an untyped ref can put anything in an inbox, so each message type can also carry a
 * Standard Schema (zod here; valibot, arktype … work the same). A payload that fails it never
 * reaches the handler: the message is marked failed and dead-lettered with the reason, and the
 * actor goes on serving. Deriving the payload types from the schemas keeps the two in step.
 *
 *   npm run example:typed-protocols
 */
import { Redis } from "ioredis";
import { pino } from "pino";
import { type ActorRef, createSystem, defineActor } from "redactor";
import { z } from "zod";
import { findRedis } from "./support/redis.js";

const PointSchema = z.object({
  pitch: z.number().min(-90).max(30),
  yaw: z.number().min(-180).max(180),
});
const CaptureSchema = z.object({
  format: z.enum(["jpeg", "raw"]),
  count: z.number().int().min(1).max(10),
});

/** A camera gimbal: `point` is a tell, `capture` a request whose reply lists the files. */
export type GimbalProtocol = {
  point: { payload: z.infer<typeof PointSchema> };
  capture: { payload: z.infer<typeof CaptureSchema>; reply: { files: string[] } };
};

const gimbal = defineActor<GimbalProtocol, { pitch: number; yaw: number; shots: number }>({
  id: "gimbal",
  schemas: { point: PointSchema, capture: CaptureSchema },
  setup: () => ({ pitch: 0, yaw: 0, shots: 0 }),
  handlers: {
    point: (p, ctx) => {
      // p is { pitch: number; yaw: number }, and within range: the schema checked it.
      ctx.state.pitch = p.pitch;
      ctx.state.yaw = p.yaw;
    },
    capture: (p, ctx) => {
      const files: string[] = [];
      for (let i = 0; i < p.count; i++) {
        ctx.state.shots += 1;
        files.push(`shot-${ctx.state.shots}-pitch${ctx.state.pitch}-yaw${ctx.state.yaw}.${p.format}`);
      }
      return { files };
    },
  },
});

/**
 * Never called: `npm run typecheck` checks these lines, and each `@ts-expect-error` fails the
 * build the day its line compiles.
 */
export function compileTimeErrors(ref: ActorRef<GimbalProtocol>): void {
  // @ts-expect-error "zoom" is not a message type of the protocol
  void ref.tell("zoom", { level: 2 });
  // @ts-expect-error pitch is a number
  void ref.tell("point", { pitch: "down", yaw: 0 });
  // @ts-expect-error "point" has no reply, so it cannot be asked
  void ref.ask("point", { pitch: 0, yaw: 0 });
  void ref.ask("capture", { format: "jpeg", count: 1 }).then((reply) => {
    // @ts-expect-error the reply has files, not file
    void reply.file;
  });
}

const redis = await findRedis();
console.log(`Redis: ${redis.description}`);
const system = await createSystem({
  redis: redis.url,
  appId: "typed-example",
  // The runtime logs each rejected payload as a warning; this example prints its own account.
  logger: pino({ level: "error" }),
});
const peek = new Redis(redis.url);
try {
  await system.spawn(gimbal);
  const ref = system.ref<GimbalProtocol>("gimbal");

  console.log("1. typed tell and ask");
  await ref.tell("point", { pitch: -45, yaw: 90 });
  const { files } = await ref.ask("capture", { format: "jpeg", count: 2 });
  console.log(`   capture replied: ${files.join(", ")}`);

  console.log("2. an untyped sender (as a peer or the CLI would be) sends a payload out of range");
  const untyped = system.ref("gimbal");
  const bad = await untyped.tell("point", { pitch: 120, yaw: "left" });
  let status = await system.messageStatus(bad);
  while (status === "pending" || status === "processing") {
    await new Promise((resolve) => setTimeout(resolve, 10));
    status = await system.messageStatus(bad);
  }
  console.log(`   its status: ${status}`);
  const letters = (await peek.zrange("queue:gimbal:dead", 0, -1)).map(
    (entry) => JSON.parse(entry) as { id?: string; reason?: string; error?: string },
  );
  const dead = letters.find((letter) => letter.id === bad) ?? {};
  console.log(`   in queue:gimbal:dead: ${dead.reason}: ${dead.error}`);

  console.log("3. the gimbal kept serving, and never saw the bad payload");
  const again = await ref.ask("capture", { format: "raw", count: 1 });
  console.log(`   capture replied: ${again.files.join(", ")}`);
} finally {
  peek.disconnect();
  await system.shutdown();
  await redis.stop();
}
