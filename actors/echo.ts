/**
 * Echo: replies to `echo` with exactly the payload it got, and to `ping` with a pong. Handy to
 * check that a peer, a network path or a new deployment can reach redactor and read its
 * replies (`redactor ask echo echo '{"hello":1}'`).
 */
import { type ActorDefinition, defineActor } from "redactor";
import { z } from "zod";

/** A JSON object payload. */
export type JsonObject = Record<string, unknown>;

/** What the echo actor handles; `T` narrows what is echoed, for typed refs. */
export type EchoProtocol<T extends JsonObject = JsonObject> = {
  /** Replied to with the same payload, as message type `echo_reply`. */
  echo: { payload: T; reply: T };
  /** Replied to with `{ pong: true, timestamp }`, as message type `pong`. */
  ping: { payload: JsonObject; reply: { pong: true; timestamp: number } };
};

/** Options of `echo`. */
export interface EchoOptions {
  /**
   * The app id.
   * @default "echo"
   */
  id?: string;
}

const objectPayload = z.record(z.string(), z.unknown());

/** An echo actor. */
export function echo(options: EchoOptions = {}): ActorDefinition<EchoProtocol, undefined> {
  return defineActor<EchoProtocol, undefined>({
    id: options.id ?? "echo",
    // Payloads are objects on the wire (docs/PROTOCOL.md); anything else is dead-lettered, not echoed.
    schemas: { echo: objectPayload, ping: objectPayload },
    replyTypes: { ping: "pong" },
    handlers: {
      echo: (payload) => payload,
      ping: () => ({ pong: true, timestamp: Date.now() / 1000 }),
    },
  });
}

/**
 * The echo actor with its defaults (app id `echo`), so that the file runs as it is:
 * `npx redactor run actors/echo.ts`.
 */
export default echo();
