import { pino } from "pino";
import { createSystem, defineActor, Priority } from "redactor";
import { findRedis } from "./support/redis.js";

// A protocol: each message type with its payload and, for requests, its reply.
type GreeterProtocol = {
  greet: { payload: { name: string }; reply: { text: string } };
  note: { payload: { text: string } }; // no reply: tell only
};

const greeter = defineActor<GreeterProtocol, { notes: number }>({
  id: "greeter", // its mailbox is the Redis sorted set queue:greeter:inbox
  setup: () => ({ notes: 0 }),
  handlers: {
    note: (payload, ctx) => {
      ctx.state.notes += 1;
      console.log(`greeter got a note: ${payload.text}`);
    },
    greet: (payload, ctx) => ({ text: `hello, ${payload.name} (notes so far: ${ctx.state.notes})` }),
  },
});

// REDIS_URL, else 127.0.0.1:6379, else a throw-away redis-server started for this run.
const redis = await findRedis();
console.error(`Redis: ${redis.description}`);
const system = await createSystem({
  redis: redis.url,
  appId: "quickstart",
  logger: pino({ level: "warn" }), // leave it out to see the info lines (system and actors start, stop)
});
try {
  await system.spawn(greeter);
  const ref = system.ref<GreeterProtocol>("greeter");

  const noteId = await ref.tell("note", { text: "tell does not wait" }, { priority: Priority.HIGH });
  const reply = await ref.ask("greet", { name: "Ada" }, { timeoutMs: 5_000 });
  console.log(reply.text);
  console.log(`status of the note: ${await system.messageStatus(noteId)}`);
} finally {
  await system.shutdown();
  await redis.stop();
}
