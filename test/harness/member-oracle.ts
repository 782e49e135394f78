/**
 * The fuzzer's oracle: what the runtime must do with one inbox member, decided from the member's
 * bytes alone, without running redactor. The rules are docs/PROTOCOL.md's message and the
 * checks of src/envelope.ts's decodeEnvelope, written again here on purpose (an oracle that
 * called the code under test would agree with its bugs):
 *
 *  1. Over `maxMessageBytes` bytes: refused (dead letter, reason `oversize`).
 *  2. Not JSON for JavaScript's JSON.parse (the text read as UTF-8, invalid sequences replaced):
 *     refused (`malformed`). NaN, Infinity and hex literals, which Lua's cjson would read, are
 *     not JSON.
 *  3. Not a JSON object (array, string, number, null): refused.
 *  4. The envelope fields, after the parse (a repeated key counts with its last value, as in
 *     both parsers): `id` a non-empty string or a safe integer; `sender`, `recipient` and
 *     `message_type` non-empty strings; a `payload` key (any value); `priority` one of the
 *     numbers 1-4 (`2.0` is 2; the string "2" is not a priority); `timestamp` a finite number
 *     >= 0 (seconds; a timestamp in ms is still a valid number); `timeout` absent, null or a
 *     finite number >= 0; `reply_to` absent, null, a string or a safe integer; a non-null
 *     `payload_meta` must be accepted by superjson. Anything else: refused.
 *  5. A valid envelope runs exactly once, unless its deadline (`timestamp + timeout`) has passed
 *     before it starts: then it never runs and its status is `timeout`.
 *  6. Where the two parsers disagree, the verdict may go either way, but it must be the same on
 *     every path and a refusal is a dead letter with a reason: a valid envelope that Lua's cjson
 *     cannot decode (a lone surrogate escape, nesting past cjson's depth limit), one whose
 *     bytes are not valid UTF-8, and one with two `id` keys (ambiguous: some readers take the
 *     first) may run once or be dead-lettered.
 *  7. A dead letter names the member's id when the member has one (and message:<id> is then
 *     `failed`); it never names another id (a nested one, the first of two). It may leave out
 *     an id that is not UTF-8 text (invalid bytes, U+FFFD, a lone surrogate: JavaScript cannot
 *     read it faithfully) and the id of a member with two `id` keys; where only Lua's cjson can
 *     read an id (JavaScript refuses the JSON, or the id is not a safe integer) or a member that
 *     is not JSON starts like redactor's own encoding (`{"id":"…",`), it may name that one.
 */
import type { Redis } from "ioredis";
import superjson from "superjson";

/** How a member can end once the actor is quiet. */
export type Outcome = "ran" | "dead" | "timeout";

/** What the runtime must do with one member. */
export interface Verdict {
  /** The outcomes the runtime may choose from; one of them, exactly once. */
  allowed: readonly Outcome[];
  /** Why, in a few words (for failure reports). */
  why: string;
  /** The id it runs under (JavaScript's reading), or null. */
  id: string | null;
  /** The key suffix of message:<id> as bytes (the id's own bytes in the member), or null. */
  idKey: Buffer | null;
  /** A dead letter of this member must name this id, and message:<id> must be `failed`. */
  requiredDeadId: Buffer | null;
  /** Ids a dead letter of this member may name (it may also name none unless one is required). */
  allowedDeadIds: readonly Buffer[];
  /** The `tag` string of its payload, when it has one (runs are counted by tag first). */
  tag: string | null;
}

/** What Lua's cjson, inside the real Redis, makes of a member. */
export interface LuaReading {
  /** cjson decoded it as it is. */
  decoded: boolean;
  /** It decoded to a table (lone surrogate escapes replaced, if that was needed). */
  table: boolean;
  /** The id as the scripts would read it from the table (string, or integer as %d), or null. */
  id: Buffer | null;
}

const LUA_READ = `
local ok, r = pcall(function()
  local okd, v = pcall(cjson.decode, ARGV[1])
  if not okd then return {0} end
  if type(v) ~= 'table' then return {1} end
  local id = v.id
  if type(id) == 'number' and id == math.floor(id) and id > -1e18 and id < 1e18 then
    return {2, string.format('%d', id)}
  end
  if type(id) == 'string' and id ~= '' then return {2, id} end
  return {2}
end)
if ok then return r end
return {0}
`;

/**
 * The member with every lone UTF-16 surrogate escape (not in a valid pair) replaced by \ufffd:
 * JSON.parse accepts them, cjson does not; with them replaced both read the same structure.
 */
export function withoutLoneSurrogates(member: Buffer): Buffer {
  const text = member.toString("latin1");
  let out = "";
  let last = 0;
  const code = (at: number) =>
    /^[0-9a-fA-F]{4}$/.test(text.slice(at, at + 4)) ? Number.parseInt(text.slice(at, at + 4), 16) : -1;
  for (let i = 0; i < text.length; i++) {
    if (text[i] !== "\\") continue;
    if (text[i + 1] !== "u") {
      i++;
      continue;
    }
    const c = code(i + 2);
    if (c >= 0xd800 && c <= 0xdbff && text[i + 6] === "\\" && text[i + 7] === "u") {
      const low = code(i + 8);
      if (low >= 0xdc00 && low <= 0xdfff) {
        i += 11;
        continue;
      }
    }
    if (c >= 0xd800 && c <= 0xdfff) {
      out += `${text.slice(last, i)}\\ufffd`;
      last = i + 6;
    }
    i += 5;
  }
  return last === 0 ? member : Buffer.from(out + text.slice(last), "latin1");
}

/**
 * Asks the real Redis how Lua's cjson reads `member` (a script that never fails); a member
 * cjson refuses only for its lone surrogate escapes is read with them replaced.
 */
export async function luaReading(redis: Redis, member: Buffer): Promise<LuaReading> {
  const read = async (bytes: Buffer) => {
    const raw = (await redis.callBuffer("EVAL", LUA_READ, 0, bytes)) as [number, Buffer?];
    const code = Number(raw[0]);
    return { decoded: code >= 1, table: code === 2, id: code === 2 && raw[1] ? Buffer.from(raw[1]) : null };
  };
  const first = await read(member);
  if (first.decoded) return first;
  const replaced = withoutLoneSurrogates(member);
  return replaced === member ? first : { ...(await read(replaced)), decoded: false };
}

function isValidUtf8(bytes: Buffer): boolean {
  try {
    new TextDecoder("utf-8", { fatal: true }).decode(bytes);
    return true;
  } catch {
    return false;
  }
}

/**
 * The top-level keys of a JSON object text, in order and with repeats (JSON.parse keeps only the
 * last of each). `text` must be JSON that JSON.parse accepted as an object.
 */
export function topLevelKeys(text: string): string[] {
  const keys: string[] = [];
  let i = 0;
  const ws = () => {
    while (i < text.length && " \t\r\n".includes(text[i] as string)) i++;
  };
  const stringEnd = (start: number) => {
    let j = start + 1;
    while (text[j] !== '"') j += text[j] === "\\" ? 2 : 1;
    return j + 1;
  };
  const skipValue = () => {
    let depth = 0;
    while (i < text.length) {
      const c = text[i] as string;
      if (c === '"') {
        i = stringEnd(i);
        if (depth === 0) return;
        continue;
      }
      if (c === "{" || c === "[") depth++;
      else if (c === "}" || c === "]") {
        if (depth === 0) return;
        depth--;
        if (depth === 0) {
          i++;
          return;
        }
      } else if (depth === 0 && (c === "," || " \t\r\n".includes(c))) return;
      i++;
    }
  };
  ws();
  i++; // {
  for (;;) {
    ws();
    if (text[i] === "}") break;
    const end = stringEnd(i);
    keys.push(JSON.parse(text.slice(i, end)) as string);
    i = end;
    ws();
    i++; // :
    ws();
    skipValue();
    ws();
    if (text[i] === ",") i++;
    else break;
  }
  return keys;
}

const isSafeId = (v: unknown): boolean => typeof v === "number" && Number.isSafeInteger(v);

/** The envelope rules (rule 4); returns the faulty field, or null when the envelope is valid. */
function envelopeFault(o: Record<string, unknown>): string | null {
  const id = o.id;
  if (!((typeof id === "string" && id !== "") || isSafeId(id))) return "id";
  for (const f of ["sender", "recipient", "message_type"]) {
    const v = o[f];
    if (typeof v !== "string" || v === "") return f;
  }
  if (!Object.hasOwn(o, "payload")) return "payload";
  if (!(o.priority === 1 || o.priority === 2 || o.priority === 3 || o.priority === 4)) return "priority";
  const ts = o.timestamp;
  if (typeof ts !== "number" || !Number.isFinite(ts) || ts < 0) return "timestamp";
  const timeout = o.timeout;
  if (timeout !== undefined && timeout !== null) {
    if (typeof timeout !== "number" || !Number.isFinite(timeout) || timeout < 0) return "timeout";
  }
  const replyTo = o.reply_to;
  if (!(replyTo === undefined || replyTo === null || typeof replyTo === "string" || isSafeId(replyTo)))
    return "reply_to";
  const meta = o.payload_meta;
  if (meta !== undefined && meta !== null) {
    try {
      superjson.deserialize({ json: o.payload as never, meta: meta as never });
    } catch {
      return "payload_meta";
    }
  }
  return null;
}

/** The bytes of a string field as they appear in the member (escapes decoded), for key names. */
function rawStringBytes(member: Buffer, key: string, jsValue: string): Buffer {
  if (isValidUtf8(member)) return Buffer.from(jsValue, "utf8");
  // Invalid UTF-8 somewhere: read the member as latin1, one char per byte, to get the bytes back.
  try {
    const v = (JSON.parse(member.toString("latin1")) as Record<string, unknown>)[key];
    if (typeof v === "string" && [...v].every((c) => c.charCodeAt(0) <= 0xff))
      return Buffer.from(v, "latin1");
  } catch {
    // fall through
  }
  return Buffer.from(jsValue, "utf8");
}

/** Slack around "now" in which a deadline may or may not have passed when the member is claimed. */
const DEADLINE_SLACK_S = 120;

/**
 * The verdict on one member.
 * @param member the member's bytes, exactly as stored in the inbox
 * @param maxBytes the serving system's `maxMessageBytes`
 * @param lua how Lua's cjson reads it (see `luaReading`)
 * @param nowSec the time the member may be claimed, Unix seconds
 */
export function judge(member: Buffer, maxBytes: number, lua: LuaReading, nowSec: number): Verdict {
  const luaIds = lua.id ? [lua.id] : [];
  // The id at the start of a member in redactor's own encoding, readable without a parse.
  const leading = /^\{"id":"([^"\\]+)",/.exec(member.toString("latin1"))?.[1];
  const leadingIds = leading === undefined ? [] : [Buffer.from(leading, "latin1")];
  const text = member.toString("utf8");
  let parsed: unknown;
  let parses = true;
  try {
    parsed = JSON.parse(text);
  } catch {
    parses = false;
  }
  const obj =
    parses && typeof parsed === "object" && parsed !== null && !Array.isArray(parsed)
      ? (parsed as Record<string, unknown>)
      : null;
  const payload = obj?.payload;
  const tagValue =
    typeof payload === "object" && payload !== null ? (payload as Record<string, unknown>).tag : undefined;
  const tag = typeof tagValue === "string" ? tagValue : null;
  const jsIdRaw = obj?.id;
  const jsId =
    typeof jsIdRaw === "string" && jsIdRaw !== "" ? jsIdRaw : isSafeId(jsIdRaw) ? String(jsIdRaw) : null;
  const idKey =
    jsId === null
      ? null
      : typeof jsIdRaw === "string"
        ? rawStringBytes(member, "id", jsId)
        : Buffer.from(jsId);
  const ambiguousId = obj !== null && topLevelKeys(text).filter((k) => k === "id").length > 1;
  // An id whose bytes are not UTF-8 text (or hold U+FFFD, what JavaScript reads for such bytes,
  // or a lone surrogate) cannot be named faithfully.
  const nameableId =
    idKey !== null &&
    !ambiguousId &&
    isValidUtf8(idKey) &&
    (typeof jsIdRaw !== "string" ||
      (Buffer.from(jsIdRaw).toString() === jsIdRaw && !jsIdRaw.includes("\ufffd")))
      ? idKey
      : null;
  const base = { id: jsId, idKey, tag };
  const refused = (why: string): Verdict => ({
    ...base,
    allowed: ["dead"],
    why,
    requiredDeadId: nameableId,
    allowedDeadIds: [...(idKey ? [idKey] : []), ...luaIds],
  });

  if (member.length > maxBytes) return refused(`oversize (${member.length} > ${maxBytes} bytes)`);
  if (!parses) {
    const v = refused("not JSON");
    return { ...v, allowedDeadIds: [...v.allowedDeadIds, ...leadingIds] };
  }
  if (obj === null) return refused("not a JSON object");
  const fault = envelopeFault(obj);
  if (fault !== null) {
    // A refused envelope whose deadline is readable and long past may also be marked timeout:
    // the deadline check may come first.
    const ts = obj.timestamp;
    const to = obj.timeout;
    const expired =
      typeof ts === "number" &&
      typeof to === "number" &&
      Number.isFinite(ts + to) &&
      ts >= 0 &&
      to >= 0 &&
      ts + to < nowSec - DEADLINE_SLACK_S;
    const v = refused(`invalid envelope: field "${fault}"`);
    return expired && fault !== "timestamp" && fault !== "timeout"
      ? { ...v, allowed: ["dead", "timeout"] }
      : v;
  }
  const unclear: string[] = [];
  if (!lua.decoded || !lua.table) unclear.push("Lua's cjson cannot decode it");
  if (!isValidUtf8(member)) unclear.push("not valid UTF-8");
  if (ambiguousId) unclear.push('two "id" keys');
  const timeout = obj.timeout as number | null | undefined;
  const deadline = timeout === undefined || timeout === null ? null : (obj.timestamp as number) + timeout;
  const runs: Outcome[] =
    deadline === null || deadline > nowSec + DEADLINE_SLACK_S
      ? ["ran"]
      : deadline < nowSec - DEADLINE_SLACK_S
        ? ["timeout"]
        : ["ran", "timeout"];
  const allowed: Outcome[] = unclear.length > 0 ? [...runs, "dead"] : runs;
  return {
    ...base,
    allowed,
    why: unclear.length > 0 ? `valid for JavaScript, but ${unclear.join(", ")}` : "valid envelope",
    requiredDeadId: nameableId,
    allowedDeadIds: ambiguousId ? [...(idKey ? [idKey] : [])] : [...(idKey ? [idKey] : []), ...luaIds],
  };
}
