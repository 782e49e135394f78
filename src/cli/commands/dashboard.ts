/** `redactor dashboard`: serve the web dashboard until Ctrl-C (SIGINT) or SIGTERM. */
import type { DashboardServer } from "../../dashboard/server.js";
import { RedactorError } from "../../errors.js";
import { type CommandSpec, stringOption } from "../command.js";
import { describeTarget, startCliSystem } from "../connect.js";
import { CommandFailedError, ExitCode, UsageError } from "../errors.js";
import { cliLogger, ephemeralAppId, forgetApp } from "../payload.js";

function parsePort(text: string | undefined): number {
  if (text === undefined) return 8080;
  const port = Number(text);
  if (!/^\d+$/.test(text) || port > 65535) {
    throw new UsageError(
      `--port must be a TCP port, 0-65535 (0 picks a free one); got "${text}"`,
      "dashboard",
    );
  }
  return port;
}

/** The `dashboard` command. */
export const dashboardCommand: CommandSpec = {
  name: "dashboard",
  summary:
    "Serve a web dashboard: apps, inboxes, message lifecycles, dead letters, a live tail, send and ask.",
  description:
    "Starts a system with its own app id (redactor-dashboard-<host>-<pid>) that sends what the page " +
    "sends and receives the replies of its asks, and serves the page until Ctrl-C. It shows every app " +
    "on the server or cluster, not only redactor's. There is NO authentication: anyone who can reach " +
    "the port can read every message and send, retry and purge; it binds 127.0.0.1 unless --host says " +
    "otherwise. The system's keys are removed when it stops.",
  args: [],
  options: {
    port: { type: "string", value: "<port>", description: "TCP port (default 8080; 0 picks a free one)" },
    host: {
      type: "string",
      value: "<address>",
      description: "address to bind (default 127.0.0.1; anything else exposes it without authentication)",
    },
  },
  examples: [
    "redactor dashboard --port 8080",
    "redactor dashboard --redis redis://10.0.0.5:6379 --port 9000",
  ],
  async run(ctx) {
    const port = parsePort(stringOption(ctx, "port"));
    const host = stringOption(ctx, "host") ?? "127.0.0.1";
    const appId = ephemeralAppId("dashboard");
    // Loaded here rather than at the top: the other commands start faster without it.
    const { serveDashboard } = await import("../../dashboard/server.js");
    const system = await startCliSystem(ctx.target, ctx.keys, appId, cliLogger());
    let server: DashboardServer | undefined;
    let stop!: () => void;
    const stopped = new Promise<void>((resolve) => {
      stop = resolve;
    });
    const onSignal = () => stop();
    process.on("SIGINT", onSignal);
    process.on("SIGTERM", onSignal);
    try {
      server = await serveDashboard(system, { port, host });
      if (ctx.json) ctx.out(JSON.stringify({ event: "ready", url: server.url, appId }));
      else ctx.out(server.url);
      ctx.err(
        `redactor dashboard: ${describeTarget(ctx.target)} at ${server.url} (no authentication` +
          `${host === "127.0.0.1" || host === "localhost" || host === "::1" ? "; loopback only" : ": EXPOSED beyond this machine"}); Ctrl-C to stop`,
      );
      await Promise.race([stopped, system.stopped]);
      return ExitCode.OK;
    } catch (err) {
      if (err instanceof RedactorError && !(err instanceof CommandFailedError))
        throw new CommandFailedError(err.message, { cause: err });
      throw err;
    } finally {
      await server?.close();
      await system.shutdown();
      const redis = await ctx.redis().catch(() => undefined);
      if (redis) await forgetApp(redis, ctx.keys, appId).catch(() => {});
      process.off("SIGINT", onSignal);
      process.off("SIGTERM", onSignal);
      ctx.err("redactor dashboard: stopped");
    }
  },
};
