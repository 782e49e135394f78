/**
 * Hello, tell and ask.
 *
 * - `tell` sends and returns the message id as soon as Redis has it; nothing comes back.
 * - `ask` sends a request and resolves with the typed reply, or rejects with AskTimeoutError.
 * - A mailbox is a Redis sorted set: messages wait there until an actor serves it, and the
 *   highest priority runs first (FIFO within a priority).
 *
 *   npm run example:hello
 */
import { pino } from "pino";
import { AskTimeoutError, createSystem, defineActor, Priority } from "redactor";
import { findRedis } from "./support/redis.js";

/** The protocol: each message type, its payload, and for requests, the reply. */
type HelloProtocol = {
  /** Tell only: no reply. */
  hello: { payload: { from: string } };
  /** A request: `ask` returns the reply. */
  greet: { payload: { name: string }; reply: { text: string; heardFrom: string[] } };
};

const greeter = defineActor<HelloProtocol, { heardFrom: string[] }>({
  id: "hello-greeter",
  setup: () => ({ heardFrom: [] }),
  handlers: {
    hello: (payload, ctx) => {
      ctx.state.heardFrom.push(payload.from);
      console.log(`  greeter heard hello from ${payload.from} (priority ${ctx.message.priority})`);
    },
    greet: (payload, ctx) => ({ text: `Hello, ${payload.name}!`, heardFrom: ctx.state.heardFrom }),
  },
});

const redis = await findRedis();
console.log(`Redis: ${redis.description}`);
const system = await createSystem({
  redis: redis.url,
  appId: "hello-example",
  logger: pino({ level: "warn" }),
});
try {
  const greeterRef = system.ref<HelloProtocol>("hello-greeter");

  console.log("1. tell three hellos before the greeter runs: they wait in queue:hello-greeter:inbox");
  const ids = [
    await greeterRef.tell("hello", { from: "a LOW sender" }, { priority: Priority.LOW }),
    await greeterRef.tell("hello", { from: "a NORMAL sender" }),
    await greeterRef.tell("hello", { from: "a CRITICAL sender" }, { priority: Priority.CRITICAL }),
  ];
  console.log(`   the first one is ${await system.messageStatus(ids[0] as string)}`);

  console.log("2. spawn the greeter: it serves its inbox, highest priority first");
  await system.spawn(greeter);
  while ((await Promise.all(ids.map((id) => system.messageStatus(id)))).some((s) => s !== "completed")) {
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  console.log(`   the first hello is now ${await system.messageStatus(ids[0] as string)}`);

  console.log("3. ask: the reply is typed (text: string, heardFrom: string[])");
  const reply = await greeterRef.ask("greet", { name: "Ada" }, { timeoutMs: 5000 });
  console.log(`   ${reply.text} The greeter heard from: ${reply.heardFrom.join(", ")}`);

  console.log("4. ask an app nobody serves: the ask times out, and its request never runs late");
  try {
    await system.ref<HelloProtocol>("nobody-home").ask("greet", { name: "anyone" }, { timeoutMs: 300 });
  } catch (err) {
    if (!(err instanceof AskTimeoutError)) throw err;
    console.log(`   ${err.name}: no reply from "${err.recipient}" within ${err.timeoutMs} ms`);
  }
} finally {
  await system.shutdown();
  await redis.stop();
}
