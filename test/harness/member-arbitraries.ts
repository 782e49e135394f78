/**
 * Arbitrary inbox members for the fuzzer: valid envelopes as the peers and redactor write them,
 * the same with each field mutated (wrong types, non-finite and huge numbers as numbers and as
 * strings, timestamps in ms, invalid UTF-8, lone surrogate escapes, repeated and escaped keys,
 * deep nesting, quotes and backslashes in ids, oversize), and junk (random bytes, text, JSON that
 * is not an object). A generated item is a readable spec; `buildMember` turns it into bytes, so
 * a shrunk counterexample reads as what was written.
 */
import fc from "fast-check";
import { canonicalScore, SCORE_BASE } from "../../src/priority.js";

/** The nine wire fields. */
export const FIELDS = [
  "id",
  "sender",
  "recipient",
  "message_type",
  "payload",
  "priority",
  "timestamp",
  "reply_to",
  "timeout",
] as const;
export type Field = (typeof FIELDS)[number];

/** How the JSON text is laid out. */
export type Style = "compact" | "python" | "loose";

/** The inbox score a member is written with. */
export type Score = "canonical" | "peer" | "-inf" | "+inf" | { band: number } | { raw: number };

/** String fields that can take injected bytes. */
export type StringField = "id" | "sender" | "message_type" | "payload" | "reply_to";

/** One change to a valid envelope. */
export type Mutation =
  /** The field's value replaced by a raw token (not necessarily JSON); "$ms" = Date.now() in ms. */
  | { m: "value"; field: Field; token: string }
  | { m: "drop"; field: Field }
  /** Raw bytes inside the field's string (for payload: inside a string of the payload). */
  | { m: "badBytes"; field: StringField; bytes: number[] }
  /** A raw escape text (a lone surrogate) inside the field's string. */
  | { m: "surrogate"; field: StringField; escape: string }
  /** The id becomes the genuine message's id and a second "id" key (fresh id) is added. */
  | { m: "dupId"; genuine: number; escapedKey: boolean; at: number; freshFirst: boolean }
  /** The field appears a second time with another value. */
  | { m: "dupField"; field: Field; token: string; at: number }
  /** The payload holds arrays nested `depth` deep. */
  | { m: "nest"; depth: number }
  /** The payload is padded past the size limit. */
  | { m: "oversize" }
  /** No top-level id; the payload holds the genuine message's id instead. */
  | { m: "nestedIdOnly"; genuine: number }
  /** Raw token text (quotes, backslashes, escapes) appended inside the id string. */
  | { m: "quoteId"; suffix: string }
  | { m: "extra"; key: string; token: string }
  /** The text cut at this fraction of its length. */
  | { m: "truncate"; at: number }
  | { m: "wrap"; as: "array" | "string" }
  /** The fields in another order (a permutation given as sort keys). */
  | { m: "reorder"; keys: number[] };

/** A valid envelope and the changes made to it. */
export interface EnvelopeSpec {
  priority: 1 | 2 | 3 | 4;
  /** Sent this many seconds ago. */
  ageSec: number;
  /** No timeout, one far ahead, or one long past. */
  deadline: "none" | "future" | "past";
  replyTo: boolean;
  type: string;
  sender: string;
  extra: Record<string, unknown>;
  style: Style;
  mutations: Mutation[];
}

/** Payloads a redactor sender may try to tell or ask. */
export type TellPayload = "plain" | "loneSurrogate" | "deep" | "date" | "unicode" | "nan";

/** Something written to the inbox. */
export type Item =
  /** system.ref(app).tell */
  | { via: "tell"; priority: 1 | 2 | 3 | 4; timeoutMs: number | null; payload: TellPayload }
  /** system.ask, not awaited */
  | { via: "ask"; priority: 1 | 2 | 3 | 4; payload: TellPayload }
  /** one payload three ways (tell, tell with a deadline, ask): their verdicts must agree */
  | { via: "twins"; priority: 1 | 2 | 3 | 4; payload: TellPayload }
  /** as the peers send: ZADD + PUBLISH + HSET message:<id> (+ EXPIRE with a timeout) */
  | { via: "peer"; score: Score; env: EnvelopeSpec }
  /** a bare ZADD, as the integration guide tests */
  | { via: "bare"; score: Score; env: EnvelopeSpec }
  /** a bare ZADD of a valid envelope that reuses the id of an earlier valid message */
  | { via: "sameId"; genuine: number; score: Score; env: EnvelopeSpec }
  /** a bare ZADD of something that is not an envelope */
  | { via: "junk"; score: Score; junk: Junk };

export type Junk =
  | { k: "bytes"; bytes: number[] }
  | { k: "text"; text: string }
  | { k: "json"; value: unknown }
  | { k: "empty" };

/** Raw tokens for number fields: non-finite, huge, hex, not JSON at all, and fine ones. */
export const NUMBER_TOKENS = [
  "NaN",
  "-NaN",
  "Infinity",
  "-Infinity",
  "inf",
  "nan",
  "1e400",
  "-1e400",
  "1e308",
  "-1e308",
  "0x10",
  "2.0",
  "2e0",
  "-0",
  "1.5",
  "0",
  "5",
  "-1",
  "9007199254740993",
  "1E2",
  "01",
  "+2",
  ".5",
];

/** The same as strings. */
export const STRING_NUMBER_TOKENS = [
  '"nan"',
  '"NaN"',
  '"inf"',
  '"-inf"',
  '"Infinity"',
  '"1e400"',
  '"0x10"',
  '"2"',
  '" 2 "',
  '"-1"',
  '"0"',
  '"1764208000"',
  '""',
];

/** Wrong types. */
export const TYPE_TOKENS = ["true", "false", "null", "[]", "{}", "[2]", '{"x":1}', '"x"'];

/** Bytes that are not valid UTF-8: a stray 0xFF, truncated sequences, surrogates, overlongs. */
export const BAD_BYTES = [
  [0xff],
  [0xc3],
  [0xe2, 0x82],
  [0xf0, 0x9f, 0x98],
  [0xed, 0xa0, 0xbd],
  [0xc0, 0xaf],
  [0x80],
  [0xfe, 0xff],
];

/** Lone surrogate escapes, as JSON text. */
export const SURROGATE_ESCAPES = ["\\ud83d", "\\udc00", "\\ud83d\\u0041", "x\\ud800", "\\udfff\\ud800"];

/** Token text appended inside an id string: quotes, backslashes, escapes. */
export const ID_SUFFIXES = [
  '\\"',
  "\\\\",
  "\\u0022",
  "\\/",
  '\\\\\\"',
  '\\",\\"x\\":\\"',
  "\\n",
  "\\u0000",
  " ",
];

const priorityArb = fc.constantFrom<1 | 2 | 3 | 4>(1, 2, 3, 4);

export const scoreArb: fc.Arbitrary<Score> = fc.oneof(
  fc.constantFrom<Score>("canonical", "peer", "-inf", "+inf"),
  fc.record({ band: fc.double({ min: 0, max: 1, noNaN: true }) }),
  fc.record({ raw: fc.double({ noNaN: true, noDefaultInfinity: true }) }),
);

const fieldArb = fc.constantFrom(...FIELDS);
const stringFieldArb = fc.constantFrom<StringField>("id", "sender", "message_type", "payload", "reply_to");
const tokenArb = fc.oneof(
  fc.constantFrom(...NUMBER_TOKENS),
  fc.constantFrom(...STRING_NUMBER_TOKENS),
  fc.constantFrom(...TYPE_TOKENS),
  fc.constant("$ms"),
);

export const mutationArb: fc.Arbitrary<Mutation> = fc.oneof(
  { arbitrary: fc.record({ m: fc.constant("value" as const), field: fieldArb, token: tokenArb }), weight: 6 },
  fc.record({ m: fc.constant("drop" as const), field: fieldArb }),
  {
    arbitrary: fc.record({
      m: fc.constant("badBytes" as const),
      field: stringFieldArb,
      bytes: fc.constantFrom(...BAD_BYTES),
    }),
    weight: 3,
  },
  {
    arbitrary: fc.record({
      m: fc.constant("surrogate" as const),
      field: stringFieldArb,
      escape: fc.constantFrom(...SURROGATE_ESCAPES),
    }),
    weight: 2,
  },
  {
    arbitrary: fc.record({
      m: fc.constant("dupId" as const),
      genuine: fc.nat(),
      escapedKey: fc.boolean(),
      at: fc.nat(10),
      freshFirst: fc.boolean(),
    }),
    weight: 3,
  },
  fc.record({ m: fc.constant("dupField" as const), field: fieldArb, token: tokenArb, at: fc.nat(10) }),
  fc.record({ m: fc.constant("nest" as const), depth: fc.constantFrom(64, 998, 999, 1000, 1001, 1200) }),
  fc.record({ m: fc.constant("oversize" as const) }),
  fc.record({ m: fc.constant("nestedIdOnly" as const), genuine: fc.nat() }),
  fc.record({ m: fc.constant("quoteId" as const), suffix: fc.constantFrom(...ID_SUFFIXES) }),
  fc.record({
    m: fc.constant("extra" as const),
    key: fc.constantFrom("payload_meta", "x", "ID", "\u0069d2", "__proto__"),
    token: tokenArb,
  }),
  fc.record({ m: fc.constant("truncate" as const), at: fc.double({ min: 0, max: 1, noNaN: true }) }),
  fc.record({ m: fc.constant("wrap" as const), as: fc.constantFrom<"array" | "string">("array", "string") }),
  fc.record({
    m: fc.constant("reorder" as const),
    keys: fc.array(fc.nat(100), { minLength: 9, maxLength: 9 }),
  }),
);

const envelopeArb = (mutations: fc.Arbitrary<Mutation[]>): fc.Arbitrary<EnvelopeSpec> =>
  fc.record({
    priority: priorityArb,
    ageSec: fc.integer({ min: 0, max: 3000 }),
    deadline: fc.constantFrom<EnvelopeSpec["deadline"]>("none", "none", "future", "past"),
    replyTo: fc.boolean(),
    type: fc.constantFrom("fuzz", "command", "telemetry", "tipo-é", "constructor"),
    sender: fc.constantFrom("petal-app-manager", "HEAR_FC", "peer", "ü-sender"),
    extra: fc.dictionary(fc.constantFrom("n", "s", "list", "nested"), fc.jsonValue({ maxDepth: 2 }), {
      maxKeys: 2,
    }),
    style: fc.constantFrom<Style>("compact", "python", "loose"),
    mutations,
  });

const tellPayloadArb = fc.constantFrom<TellPayload>(
  "plain",
  "plain",
  "loneSurrogate",
  "deep",
  "date",
  "unicode",
  "nan",
);

const junkArb: fc.Arbitrary<Junk> = fc.oneof(
  fc.record({ k: fc.constant("bytes" as const), bytes: fc.array(fc.nat(255), { maxLength: 40 }) }),
  fc.record({ k: fc.constant("text" as const), text: fc.string({ maxLength: 40, unit: "binary" }) }),
  fc.record({ k: fc.constant("json" as const), value: fc.jsonValue({ maxDepth: 3 }) }),
  fc.record({ k: fc.constant("empty" as const) }),
);

/** One item written to the inbox. */
export const itemArb: fc.Arbitrary<Item> = fc.oneof(
  {
    arbitrary: fc.record({
      via: fc.constant("tell" as const),
      priority: priorityArb,
      timeoutMs: fc.option(fc.constantFrom(60_000, 3_600_000)),
      payload: tellPayloadArb,
    }),
    weight: 4,
  },
  {
    arbitrary: fc.record({
      via: fc.constant("ask" as const),
      priority: priorityArb,
      payload: tellPayloadArb,
    }),
    weight: 1,
  },
  {
    arbitrary: fc.record({
      via: fc.constant("twins" as const),
      priority: priorityArb,
      payload: tellPayloadArb,
    }),
    weight: 1,
  },
  {
    arbitrary: fc.record({
      via: fc.constant("peer" as const),
      score: scoreArb,
      env: envelopeArb(fc.array(mutationArb, { maxLength: 3 })),
    }),
    weight: 5,
  },
  {
    arbitrary: fc.record({
      via: fc.constant("bare" as const),
      score: scoreArb,
      env: envelopeArb(fc.array(mutationArb, { maxLength: 3 })),
    }),
    weight: 5,
  },
  {
    arbitrary: fc.record({
      via: fc.constant("sameId" as const),
      genuine: fc.nat(),
      score: scoreArb,
      env: envelopeArb(fc.constant([])),
    }),
    weight: 2,
  },
  { arbitrary: fc.record({ via: fc.constant("junk" as const), score: scoreArb, junk: junkArb }), weight: 2 },
);

/** What `buildMember` needs besides the spec. */
export interface BuildContext {
  /** The serving app id (the envelope's recipient). */
  app: string;
  /** This member's own id (unique). */
  id: string;
  /** This member's tag (unique), put in its payload. */
  tag: string;
  /** An id for a second "id" key (unique). */
  freshId: string;
  /** An integer no other member uses, for ids written as numbers. */
  uniqueInt: number;
  /** Ids of valid messages written earlier (for dupId, nestedIdOnly, sameId). */
  genuineIds: readonly string[];
  maxMessageBytes: number;
  nowSec: number;
}

/** A member built from a spec. */
export interface BuiltMember {
  bytes: Buffer;
  /** The id a peer would write message:<id> for. */
  id: string;
  /** Unix seconds, and priority, of the envelope before its mutations (for the score). */
  timestamp: number;
  priority: 1 | 2 | 3 | 4;
  /** A deadline a peer would EXPIRE the hash after, seconds, or null. */
  timeout: number | null;
}

const b = (s: string) => Buffer.from(s, "utf8");
const q = (s: string) => b(JSON.stringify(s));

/** A raw token as bytes ("$ms": Date.now() as a number). */
function tokenBytes(token: string): Buffer {
  return token === "$ms" ? b(String(Date.now())) : b(token);
}

/**
 * A token written as an id, made unique so that ids never repeat across members and runs (a
 * repeated id is a duplicate, which is not what the token is there to try): a string keeps its
 * text after a unique prefix, a safe integer (in any spelling) becomes a unique one in the same
 * spelling; the rest (empty, non-integer, not JSON) cannot be an id and stays as it is.
 */
function uniqueIdToken(token: string, ctx: BuildContext): Buffer {
  if (token === "$ms") return b(String(ctx.uniqueInt));
  let value: unknown;
  try {
    value = JSON.parse(token);
  } catch {
    return b(token);
  }
  if (typeof value === "string" && value !== "") return q(`${ctx.id}-${value}`);
  if (typeof value === "number" && Number.isSafeInteger(value)) {
    return b(/[.eE]/.test(token) ? `${ctx.uniqueInt}.0` : String(ctx.uniqueInt));
  }
  return b(token);
}

/** Inserts raw bytes just before the closing quote of a JSON string token, or into an object. */
function inject(value: Buffer, raw: Buffer): Buffer {
  const last = value[value.length - 1];
  if (value.length >= 2 && value[0] === 0x22 && last === 0x22) {
    return Buffer.concat([value.subarray(0, -1), raw, b('"')]);
  }
  if (value.length >= 2 && value[0] === 0x7b && last === 0x7d) {
    const empty = value.subarray(1, -1).toString().trim() === "";
    return Buffer.concat([value.subarray(0, -1), b(empty ? '"s":"' : ',"s":"'), raw, b('"}')]);
  }
  return Buffer.concat([b('"'), raw, b('"')]);
}

/** Adds `"key":<raw>` to a payload object token (or wraps a non-object payload). */
function addToPayload(value: Buffer, key: string, raw: Buffer): Buffer {
  if (value.length >= 2 && value[0] === 0x7b && value[value.length - 1] === 0x7d) {
    const empty = value.subarray(1, -1).toString().trim() === "";
    return Buffer.concat([value.subarray(0, -1), b(empty ? "" : ","), q(key), b(":"), raw, b("}")]);
  }
  return Buffer.concat([b("{"), q(key), b(":"), raw, b(',"was":'), value, b("}")]);
}

function pick<T>(list: readonly T[], n: number): T | undefined {
  return list.length === 0 ? undefined : list[n % list.length];
}

/** The bytes of an envelope spec, with its mutations applied in order. */
export function buildMember(spec: EnvelopeSpec, ctx: BuildContext, idOverride?: string): BuiltMember {
  const id = idOverride ?? ctx.id;
  const timestamp =
    spec.deadline === "past"
      ? ctx.nowSec - 7200 - spec.ageSec
      : Math.round((ctx.nowSec - spec.ageSec) * 1e6) / 1e6;
  const timeout = spec.deadline === "none" ? null : spec.deadline === "future" ? 3600 : 1;
  let fields: [Buffer, Buffer][] = [
    [q("id"), q(id)],
    [q("sender"), q(spec.sender)],
    [q("recipient"), q(ctx.app)],
    [q("message_type"), q(spec.type)],
    [q("payload"), b(JSON.stringify({ tag: ctx.tag, ...spec.extra }))],
    [q("priority"), b(String(spec.priority))],
    [q("timestamp"), b(String(timestamp))],
    [q("reply_to"), spec.replyTo ? q(`${ctx.id}-request`) : b("null")],
    [q("timeout"), timeout === null ? b("null") : b(String(timeout))],
  ];
  const find = (field: string) => fields.findIndex(([k]) => k.equals(q(field)));
  const set = (field: string, value: Buffer) => {
    const i = find(field);
    if (i >= 0) (fields[i] as [Buffer, Buffer])[1] = value;
    else fields.push([q(field), value]);
  };
  const get = (field: string) => fields[find(field)]?.[1];
  const insertAt = (at: number, entry: [Buffer, Buffer]) => fields.splice(at % (fields.length + 1), 0, entry);
  const post: Mutation[] = [];
  for (const mu of spec.mutations) {
    switch (mu.m) {
      case "value":
        set(mu.field, mu.field === "id" ? uniqueIdToken(mu.token, ctx) : tokenBytes(mu.token));
        break;
      case "drop":
        fields = fields.filter(([k]) => !k.equals(q(mu.field)));
        break;
      case "badBytes":
      case "surrogate": {
        const raw = mu.m === "badBytes" ? Buffer.from(mu.bytes) : b(mu.escape);
        const current = get(mu.field) ?? q("");
        set(
          mu.field,
          mu.field === "payload" ? addToPayload(current, "s", inject(q(""), raw)) : inject(current, raw),
        );
        break;
      }
      case "dupId": {
        const genuine = pick(ctx.genuineIds, mu.genuine) ?? `${ctx.freshId}-first`;
        set("id", q(mu.freshFirst ? ctx.freshId : genuine));
        const key = mu.escapedKey ? b('"\\u0069d"') : q("id");
        insertAt(mu.at, [key, q(mu.freshFirst ? genuine : ctx.freshId)]);
        break;
      }
      case "dupField":
        insertAt(mu.at, [
          q(mu.field),
          mu.field === "id" ? uniqueIdToken(mu.token, ctx) : tokenBytes(mu.token),
        ]);
        break;
      case "nest":
        set(
          "payload",
          addToPayload(get("payload") ?? b("{}"), "deep", b("[".repeat(mu.depth) + "]".repeat(mu.depth))),
        );
        break;
      case "oversize":
        set("payload", addToPayload(get("payload") ?? b("{}"), "pad", q("x".repeat(ctx.maxMessageBytes))));
        break;
      case "nestedIdOnly": {
        const genuine = pick(ctx.genuineIds, mu.genuine) ?? ctx.freshId;
        fields = fields.filter(([k]) => !k.equals(q("id")));
        set("payload", addToPayload(get("payload") ?? b("{}"), "id", q(genuine)));
        break;
      }
      case "quoteId": {
        const current = get("id");
        set("id", inject(current && current[0] === 0x22 ? current : q(id), b(mu.suffix)));
        break;
      }
      case "extra":
        set(mu.key, tokenBytes(mu.token));
        break;
      case "reorder": {
        const order = fields.map((f, i) => ({ f, key: mu.keys[i] ?? i }));
        order.sort((x, y) => x.key - y.key);
        fields = order.map((o) => o.f);
        break;
      }
      default:
        post.push(mu);
    }
  }
  const [sep, colon, open, close] =
    spec.style === "compact"
      ? [",", ":", "{", "}"]
      : spec.style === "python"
        ? [", ", ": ", "{", "}"]
        : [",\n  ", " :\t", "{\n  ", "\n}\n"];
  const parts: Buffer[] = [b(open)];
  fields.forEach(([k, v], i) => {
    if (i > 0) parts.push(b(sep));
    parts.push(k, b(colon), v);
  });
  parts.push(b(close));
  let bytes = Buffer.concat(parts);
  for (const mu of post) {
    if (mu.m === "truncate") bytes = bytes.subarray(0, Math.floor(mu.at * bytes.length));
    else if (mu.m === "wrap")
      bytes = mu.as === "array" ? Buffer.concat([b("["), bytes, b("]")]) : q(bytes.toString("latin1"));
  }
  return { bytes, id, timestamp, priority: spec.priority, timeout };
}

/** The bytes of a junk item. */
export function buildJunk(junk: Junk): Buffer {
  switch (junk.k) {
    case "bytes":
      return Buffer.from(junk.bytes);
    case "text":
      return b(junk.text);
    case "json":
      return b(JSON.stringify(junk.value) ?? "null");
    case "empty":
      return Buffer.alloc(0);
  }
}

/** The score to ZADD with, as Redis reads it. */
export function scoreText(score: Score, priority: 1 | 2 | 3 | 4, timestamp: number): string {
  if (score === "canonical") return String(canonicalScore(priority, Math.round(timestamp * 1e6)));
  if (score === "peer") return String(priority * 1000 + timestamp);
  if (score === "-inf" || score === "+inf") return score;
  if ("band" in score) return String(SCORE_BASE + Math.floor(score.band * (SCORE_BASE - 1)));
  return String(score.raw);
}

/** The payload of a tell or ask, tagged. */
export function tellPayload(kind: TellPayload, tag: string): Record<string, unknown> {
  switch (kind) {
    case "plain":
      return { tag, n: 1 };
    case "loneSurrogate":
      return { tag, s: "\ud83d" };
    case "deep": {
      let deep: unknown[] = [];
      for (let i = 0; i < 1001; i++) deep = [deep];
      return { tag, deep };
    }
    case "date":
      return { tag, at: new Date(0) };
    case "unicode":
      return { tag, s: "é😀\u0000\u2028\uffff" };
    case "nan":
      return { tag, x: Number.NaN };
  }
}

/** A member's bytes for a report: the text when it is UTF-8, else latin1 with a note. */
export function showMember(bytes: Buffer, max = 240): string {
  let text: string;
  let note = "";
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    text = bytes.toString("latin1");
    note = " (not UTF-8; shown byte per char)";
  }
  const shown = JSON.stringify(text.length > max ? `${text.slice(0, max)}…[${bytes.length} bytes]` : text);
  return shown + note;
}
