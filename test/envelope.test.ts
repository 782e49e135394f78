import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  decodeEnvelope,
  type Envelope,
  EnvelopeError,
  encodeEnvelope,
  PAYLOAD_META_FIELD,
} from "../src/index.js";

import { FIELDS } from "./harness/member-arbitraries.js";

const WIRE_FIELDS = [...FIELDS];

function envelope(payload: unknown, extra: Partial<Envelope> = {}): Envelope {
  return {
    id: "5f0c",
    sender: "petal-app-manager",
    recipient: "HEAR_FC",
    message_type: "command",
    payload,
    priority: 3,
    timestamp: 1764208000.123,
    reply_to: null,
    timeout: null,
    ...extra,
  };
}

describe("envelope codec", () => {
  it("writes exactly the nine wire fields, in order, nulls included", () => {
    const text = encodeEnvelope(
      envelope({ command_id: "cmd_1", command: "takeoff", parameters: { altitude: 20 } }),
    );
    expect(text).toBe(
      '{"id":"5f0c","sender":"petal-app-manager","recipient":"HEAR_FC","message_type":"command",' +
        '"payload":{"command_id":"cmd_1","command":"takeoff","parameters":{"altitude":20}},' +
        '"priority":3,"timestamp":1764208000.123,"reply_to":null,"timeout":null}',
    );
    expect(Object.keys(JSON.parse(text))).toEqual(WIRE_FIELDS);
  });

  it("round-trips plain JSON payloads without the superjson field", () => {
    const env = envelope({ a: [1, "x", null, true, { b: 2.5 }] }, { reply_to: "r1", timeout: 5 });
    const text = encodeEnvelope(env);
    expect(text).not.toContain(PAYLOAD_META_FIELD);
    expect(decodeEnvelope(text)).toEqual(env);
  });

  it("carries Date, Map, Set, BigInt and undefined through superjson in one extra field", () => {
    const payload = {
      at: new Date("2026-01-02T03:04:05.678Z"),
      map: new Map([["k", 1]]),
      set: new Set(["a", "b"]),
      big: 12345678901234567890n,
      missing: undefined,
      nested: [{ when: new Date(0) }],
    };
    const text = encodeEnvelope(envelope(payload));
    const wire = JSON.parse(text);
    expect(Object.keys(wire)).toEqual([...WIRE_FIELDS, PAYLOAD_META_FIELD]);
    const decoded = decodeEnvelope(text).payload as typeof payload;
    expect(decoded.at).toBeInstanceOf(Date);
    expect(decoded.at.toISOString()).toBe("2026-01-02T03:04:05.678Z");
    expect(decoded.map).toEqual(new Map([["k", 1]]));
    expect(decoded.set).toEqual(new Set(["a", "b"]));
    expect(decoded.big).toBe(12345678901234567890n);
    expect("missing" in decoded).toBe(true);
    expect(decoded.nested[0]?.when).toEqual(new Date(0));
  });

  it("drops undefined optional fields as JSON does, so a peer can still read the message", () => {
    const text = encodeEnvelope(
      envelope({ command_id: "c1", parameters: { altitude: undefined, speed: 2 } }),
    );
    expect(text).not.toContain(PAYLOAD_META_FIELD);
    expect(decodeEnvelope(text).payload).toEqual({ command_id: "c1", parameters: { speed: 2 } });
  });

  it("decodes what the peers write: integer timestamps, missing reply_to and timeout, numeric ids", () => {
    const text =
      '{"id": 42, "sender": "HEAR_FC", "recipient": "petal-app-manager", "message_type": "telemetry", ' +
      '"payload": {"battery_level": 80}, "priority": 2, "timestamp": 1234567890}';
    expect(decodeEnvelope(text)).toEqual({
      id: "42",
      sender: "HEAR_FC",
      recipient: "petal-app-manager",
      message_type: "telemetry",
      payload: { battery_level: 80 },
      priority: 2,
      timestamp: 1234567890,
      reply_to: null,
      timeout: null,
    });
  });

  const good = JSON.parse(encodeEnvelope(envelope({})));
  const cases: [string, string, RegExp][] = [
    ["not JSON", "{oops", /field "json" is not valid JSON/],
    ["an array", "[1,2]", /field "json" must be a JSON object/],
    ["no id", JSON.stringify({ ...good, id: undefined }), /field "id" is missing/],
    ["no sender", JSON.stringify({ ...good, sender: undefined }), /field "sender" is missing/],
    [
      "a numeric type",
      JSON.stringify({ ...good, message_type: 7 }),
      /field "message_type" must be a non-empty string/,
    ],
    ["no payload", JSON.stringify({ ...good, payload: undefined }), /field "payload" is missing/],
    [
      "priority 5",
      JSON.stringify({ ...good, priority: 5 }),
      /field "priority" must be an integer 1-4, got 5/,
    ],
    ["priority 2.5", JSON.stringify({ ...good, priority: 2.5 }), /field "priority"/],
    ["a text timestamp", JSON.stringify({ ...good, timestamp: "now" }), /field "timestamp"/],
    ["a negative timeout", JSON.stringify({ ...good, timeout: -1 }), /field "timeout"/],
  ];
  it.each(cases)("rejects %s with a typed error naming the field", (_name, text, message) => {
    let caught: unknown;
    try {
      decodeEnvelope(text);
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(EnvelopeError);
    expect((caught as Error).message).toMatch(message);
  });

  it("refuses to encode what a receiver would refuse: empty or non-string id, sender, recipient, type", () => {
    for (const field of ["id", "sender", "recipient", "message_type"] as const) {
      expect(() => encodeEnvelope(envelope({}, { [field]: "" }))).toThrow(EnvelopeError);
      expect(() => encodeEnvelope(envelope({}, { [field]: 7 as unknown as string }))).toThrow(EnvelopeError);
    }
  });

  it("property: whatever encodeEnvelope writes, decodeEnvelope reads back (seeded)", () => {
    const text = fc.oneof(fc.constant(""), fc.string(), fc.string({ unit: "grapheme", minLength: 1 }));
    fc.assert(
      fc.property(
        fc.record({ id: text, sender: text, recipient: text, message_type: text }),
        fc.jsonValue(),
        fc.integer({ min: 1, max: 4 }),
        (fields, payload, priority) => {
          const env = envelope(payload, { ...fields, priority: priority as Envelope["priority"] });
          let member: string;
          try {
            member = encodeEnvelope(env);
          } catch (err) {
            expect(err).toBeInstanceOf(EnvelopeError);
            return;
          }
          expect(decodeEnvelope(member).message_type).toBe(fields.message_type);
        },
      ),
      { seed: 1300, numRuns: 500 },
    );
  });
});
