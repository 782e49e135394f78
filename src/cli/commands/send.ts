/** `redactor send` and `redactor ask`: put a message in an app's inbox, optionally wait for the reply. */
import { RedisClock } from "../../clock.js";
import type { RedisClient } from "../../cluster.js";
import type { Envelope } from "../../envelope.js";
import { createEnvelope, newMessageId } from "../../envelope.js";
import {
  AskFailedError,
  AskTimeoutError,
  MessageTooLargeError,
  UnserializableValueError,
} from "../../errors.js";
import { CLI_APP_ID, expireCliKeys } from "../../hygiene.js";
import { Mailbox, mailboxConfig } from "../../mailbox.js";
import { readStatus } from "../../presence.js";
import { Priority } from "../../priority.js";
import { arg, type CommandContext, type CommandSpec, stringOption } from "../command.js";
import { startCliSystem } from "../connect.js";
import { CommandFailedError, ExitCode, UsageError } from "../errors.js";
import { parseDuration, parsePriority, priorityName } from "../format.js";
import { cliLogger, ephemeralAppId, fieldAt, forgetApp, readPayload } from "../payload.js";

/** A protocol in which every type is a request with an unknown reply. */
type AnyRequest = Record<string, { payload: unknown; reply: unknown }>;

const messageArgs = [
  { name: "app", description: "the recipient's app id, e.g. HEAR_FC" },
  { name: "type", description: "the message_type, e.g. command" },
  { name: "json", description: "the payload: a JSON object, - for stdin, or @file" },
] as const;

const priorityOption = {
  type: "string",
  value: "<p>",
  description: "low, normal, high, critical or 1-4 (default normal)",
} as const;

function priorityOf(ctx: CommandContext): Priority {
  const text = stringOption(ctx, "priority");
  return text === undefined ? Priority.NORMAL : parsePriority(text);
}

async function noteIfOffline(ctx: CommandContext, app: string): Promise<void> {
  const status = await readStatus(await ctx.redis(), ctx.keys, app);
  if (!status) ctx.err(`note: "${app}" has never announced itself here; the message waits in its inbox`);
  else if (!status.online)
    ctx.err(`note: "${app}" is not online; the message waits in its inbox until it is`);
}

/** The `send` command. */
export const sendCommand: CommandSpec = {
  name: "send",
  summary: "Send a message to an app's inbox (tell); prints its id.",
  description:
    "Writes the message the way redactor does (one atomic script: inbox at the score the recipient " +
    "expects, message:<id> hash, outbox copy, PUBLISH channel:<app>). It does not wait: if the " +
    "handler replies, the reply goes to the sender's inbox (--from, default redactor-cli); use " +
    '"redactor ask" to wait for it. The id goes to stdout, the summary to stderr.',
  args: messageArgs,
  options: {
    priority: priorityOption,
    timeout: {
      type: "string",
      value: "<duration>",
      description:
        "deadline: the message must start within this time or it is marked timeout (5s, 2m; bare = seconds)",
    },
    from: {
      type: "string",
      value: "<app>",
      description: "the sender app id, where replies go (default redactor-cli)",
    },
    id: {
      type: "string",
      value: "<id>",
      description: "the message id (default a fresh uuid4); an id runs at most once",
    },
  },
  examples: [
    `redactor send HEAR_FC telemetry '{"battery_level": 80, "altitude": 12}'`,
    `redactor send HEAR_FC command '{"command_id":"c1","command":"land"}' --priority critical --timeout 10s`,
  ],
  async run(ctx) {
    const app = arg(ctx, "app");
    const type = arg(ctx, "type");
    const payload = readPayload(arg(ctx, "json"), "send");
    const priority = priorityOf(ctx);
    const timeoutText = stringOption(ctx, "timeout");
    const timeoutMs = timeoutText === undefined ? undefined : parseDuration(timeoutText, "--timeout");
    const sender = stringOption(ctx, "from") ?? CLI_APP_ID;
    const id = stringOption(ctx, "id") ?? newMessageId();
    if (sender === "" || id === "") throw new UsageError("--from and --id cannot be empty", "send");
    const redis = await ctx.redis();
    const mailbox = new Mailbox(redis, ctx.keys, mailboxConfig());
    // Stamped by Redis' clock, as a system stamps what it sends: a deadline does not depend on
    // this host's clock.
    const clock = new RedisClock(redis);
    await clock.sync();
    const envelope: Envelope = createEnvelope(
      {
        id,
        sender,
        recipient: app,
        type,
        payload,
        priority,
        timeoutMs,
      },
      clock,
    );
    let encoded: ReturnType<Mailbox["encode"]>;
    try {
      encoded = mailbox.encode(envelope);
    } catch (err) {
      if (err instanceof MessageTooLargeError || err instanceof UnserializableValueError) {
        throw new CommandFailedError(err.message);
      }
      throw err;
    }
    if ((await mailbox.send([encoded])).length > 0) {
      const status = await redis.hget(ctx.keys.message(app, id), "status");
      throw new CommandFailedError(
        `not sent: message ${id} is already ${status ?? "known"}, and an id runs at most once; ` +
          "leave out --id to send a new message",
      );
    }
    // Replies to the CLI's own id are read by nobody: they expire (src/hygiene.ts).
    if (sender === CLI_APP_ID) await expireCliKeys(redis, ctx.keys);
    if (ctx.json) {
      ctx.out(JSON.stringify(envelope));
    } else {
      ctx.out(id);
      ctx.err(`sent "${type}" to ${app} from ${sender}, priority ${priorityName(priority)}`);
    }
    await noteIfOffline(ctx, app);
    return ExitCode.OK;
  },
};

/** What became of a request that got no reply, from its message hash, and what to do about it. */
async function requestFate(
  redis: RedisClient,
  ctx: CommandContext,
  id: string,
  app: string,
  type: string,
  matching: boolean,
): Promise<string> {
  const [status, error] = await redis.hmget(ctx.keys.message(app, id), "status", "error");
  switch (status) {
    case "failed":
      return `the request failed (${error ?? "no error recorded"}); see "redactor dlq ls ${app}"`;
    case "timeout":
      return "it was not started before its deadline; raise --timeout";
    case "processing":
      return "its handler is still running; raise --timeout";
    case "completed":
      return matching
        ? "it completed but no message matched --reply-type/--match-field"
        : "it completed but no reply came back with reply_to set: the handler returned nothing, or the " +
            "recipient is a peer that replies without reply_to (add --reply-type and --match-field)";
    default:
      return `it is still waiting in the inbox; check that ${app} is online ("redactor ls") and handles "${type}", or raise --timeout`;
  }
}

/** The `ask` command. */
export const askCommand: CommandSpec = {
  name: "ask",
  summary: "Send a request and print the reply's payload; exit 1 when it fails or no reply comes in time.",
  description:
    "Starts a short-lived system with its own app id (redactor-ask-<host>-<pid>) whose inbox receives " +
    "the reply, correlated by reply_to. Peers that reply without reply_to (the Python and C++ " +
    "ones) are matched with --reply-type and/or --match-field. The request carries the same " +
    "deadline, so a redactor actor never runs it after the CLI gave up. When the recipient " +
    "dead-letters the request (its handler threw, the payload fails its schema, …) its error reply " +
    "is printed with the reason and the command exits 1 at once. The CLI's keys are removed afterwards.",
  args: messageArgs,
  options: {
    priority: priorityOption,
    timeout: {
      type: "string",
      value: "<duration>",
      description: "how long to wait for the reply (default 5s; 500ms, 2m; bare = seconds)",
    },
    "reply-type": {
      type: "string",
      value: "<type>",
      description: "accept a message of this type as the reply even without reply_to (e.g. command_response)",
    },
    "match-field": {
      type: "string",
      value: "<path>",
      description: "… whose payload has the same value at this path as the request (e.g. command_id)",
    },
  },
  examples: [
    `redactor ask echo ping '{"n": 1}'`,
    `redactor ask HEAR_FC command '{"command_id":"c7","command":"takeoff"}' --reply-type command_response --match-field command_id`,
  ],
  async run(ctx) {
    const app = arg(ctx, "app");
    const type = arg(ctx, "type");
    const payload = readPayload(arg(ctx, "json"), "ask");
    const priority = priorityOf(ctx);
    const timeoutText = stringOption(ctx, "timeout");
    const timeoutMs = timeoutText === undefined ? 5000 : parseDuration(timeoutText, "--timeout");
    const replyType = stringOption(ctx, "reply-type");
    const matchField = stringOption(ctx, "match-field");
    const match =
      replyType === undefined && matchField === undefined
        ? undefined
        : (m: Envelope) =>
            (replyType === undefined || m.message_type === replyType) &&
            (matchField === undefined || fieldAt(m.payload, matchField) === fieldAt(payload, matchField));
    const appId = ephemeralAppId("ask");
    const system = await startCliSystem(ctx.target, ctx.keys, appId, cliLogger());
    const started = performance.now();
    try {
      await noteIfOffline(ctx, app);
      // Untyped on purpose: the CLI asks any type of any app and prints whatever comes back.
      const reply = await system
        .ref<AnyRequest>(app)
        .ask(type, payload, { timeoutMs, priority, ...(match ? { match } : {}) });
      const latencyMs = Math.round((performance.now() - started) * 10) / 10;
      if (ctx.json) ctx.out(JSON.stringify({ recipient: app, type, latencyMs, reply }));
      else {
        ctx.out(JSON.stringify(reply, null, 2));
        ctx.err(`reply from ${app} in ${latencyMs} ms`);
      }
      return ExitCode.OK;
    } catch (err) {
      if (err instanceof MessageTooLargeError || err instanceof UnserializableValueError) {
        throw new CommandFailedError(err.message);
      }
      if (err instanceof AskFailedError) {
        throw new CommandFailedError(
          `"${app}" failed "${type}" (request ${err.messageId}): the request failed (${err.detail}), ` +
            `reason ${err.reason}; it is in the dead letters ("redactor dlq ls ${app}")`,
        );
      }
      if (err instanceof AskTimeoutError) {
        const fate = await requestFate(await ctx.redis(), ctx, err.messageId, app, type, match !== undefined);
        throw new CommandFailedError(
          `no reply from "${app}" to "${type}" (request ${err.messageId}) within ${err.timeoutMs} ms: ${fate}`,
        );
      }
      throw err;
    } finally {
      await system.shutdown();
      await forgetApp(await ctx.redis(), ctx.keys, appId).catch(() => {});
    }
  },
};
