import { createSystem, defineActor, payloadEncoding } from "../src/index.ts";
import { startRedis } from "../test/harness/redis-server.ts";
import { isDeepStrictEqual, inspect } from "node:util";
const srv = await startRedis();
const S = await createSystem({ redis: srv.url, appId: "sys" });
const got = new Map<string, unknown>();
await S.spawn(defineActor<any>({ id: "act", handlers: {}, fallback: (p: any, ctx: any) => { got.set(ctx.message.message_type, p); } }));
class M extends Map {}
class A extends Array {}
class D extends Date {}
const getterObj = {} as any; Object.defineProperty(getterObj, "g", { get() { return 42; }, enumerable: true });
const dateExtra = new Date(0) as any; dateExtra.note = "x";
const cases: [string, () => unknown][] = [
  ["proxy", () => new Proxy({ a: 1 }, {})],
  ["getter", () => getterObj],
  ["mapSubclass", () => new M([["a", 1]])],
  ["arraySubclass", () => A.from([1, 2])],
  ["dateSubclass", () => new D(0)],
  ["dateExtraProp", () => dateExtra],
  ["nullProtoChain", () => Object.create(Object.create(null))],
  ["arrayBuffer", () => new ArrayBuffer(4)],
  ["dataView", () => new DataView(new ArrayBuffer(4))],
  ["weakMap", () => new WeakMap()],
  ["u8subarray", () => new Uint8Array([1, 2, 3, 4]).subarray(1, 3)],
  ["setNaN", () => new Set([NaN, -0])],
  ["mapObjKey", () => new Map([[{ k: 1 }, "v"]])],
  ["loneSurrogateString", () => ({ s: "a\ud83db" })],
  ["protoKeyJson", () => JSON.parse('{"__proto__": {"x": 1}, "a": 1}')],
  ["maxDate", () => new Date(8.64e15)],
  ["bigBigInt", () => 2n ** 200n],
  ["errorCircularCause", () => { const e: any = new Error("e"); e.cause = e; return e; }],
  ["regexpLastIndex", () => { const r = /a/g; r.lastIndex = 3; return r; }],
  ["nestedMapInArrayUndefined", () => [undefined, new Map([["u", undefined]])]],
  ["objWithToJSON", () => ({ toJSON: undefined, a: 1 })],
  ["float32NaN", () => new Float32Array([NaN, -0, Infinity])],
  ["frozen", () => Object.freeze({ a: [1] })],
  ["symbolKeyOnly", () => ({ [Symbol("s")]: 1 })],
  ["bigint64", () => new BigInt64Array([-(2n ** 63n)])],
  ["errorNameOverride", () => { const e = new TypeError("t"); (e as any).name = "Custom"; return e; }],
  ["aggregateError", () => new AggregateError([new Error("x")], "agg")],
  ["urlSearchParams", () => new URLSearchParams("a=1")],
];
for (const [name, make] of cases) {
  let v: unknown, enc = "", sent = false;
  try { v = make(); enc = payloadEncoding(v); } catch (e: any) { enc = "refused(payloadEncoding): " + e.name; }
  try { await S.ref<any>("act").tell(name, v); sent = true; } catch (e: any) { console.log(name.padEnd(26), "tell refused:", e.name, String(e.message).slice(0, 90)); continue; }
  const t0 = Date.now(); while (!got.has(name) && Date.now() - t0 < 2000) await new Promise(r => setTimeout(r, 10));
  if (!got.has(name)) { console.log(name.padEnd(26), "SENT but never arrived", enc); continue; }
  const a = got.get(name);
  const same = isDeepStrictEqual(a, v) && Object.getPrototypeOf(a ?? {}) === Object.getPrototypeOf(v ?? {});
  console.log(name.padEnd(26), enc.padEnd(10), same ? "intact" : "ALTERED: sent " + inspect(v, { depth: 2, breakLength: 1e9 }).slice(0, 70) + " got " + inspect(a, { depth: 2, breakLength: 1e9 }).slice(0, 70));
}
console.log("dead:", (await srv.client().zrange("queue:act:dead", 0, -1)).map(e => JSON.parse(e).reason + ":" + String(JSON.parse(e).error).slice(0, 60)));
await S.shutdown(); await srv.stop(); process.exit(0);
