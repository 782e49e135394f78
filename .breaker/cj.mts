import { startRedis } from "../test/harness/redis-server.ts";
const srv = await startRedis(); const r = srv.client();
for (const s of ['{"a":0x10}', '{"a":nan}', '{"a":inf}', '{"a":-Infinity}', '{"a":"x\ty"}', '{"a":+1}', '{"a":01}', '{"a":1.}', '{"a":.5}', '{"a":1,}', "{\"a\":1}\u0000junk", '{"a":"\\u0000"}', '{"a":1e999}', '{"a":-nan}', '{"a":0X1p3}', '{"a":1E+2}', '{"a":  1  }  ']) {
  try { const v = await r.eval("local ok, v = pcall(cjson.decode, ARGV[1]); if not ok then return 'ERR ' .. tostring(v) end; return type(v.a) .. ':' .. tostring(v.a)", 0, s); let js; try { js = JSON.stringify(JSON.parse(s)); } catch (e) { js = "JS-ERR"; } console.log(JSON.stringify(s), "=> lua", v, "| js", js); } catch (e: any) { console.log(s, "eval err", e.message); }
}
await srv.stop(); process.exit(0);
