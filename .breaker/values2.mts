import { payloadEncoding } from "../src/index.ts";
const m = new Map([["a", 1]]) as any; m.extra = 1;
const s = new Set([1]) as any; s.extra = 1;
const u = new Uint8Array([1]) as any; u.extra = 1;
const d = new Date(0) as any; d.extra = 1;
const arr = [1] as any; arr.extra = 1;
for (const [n, v] of Object.entries({ m, s, u, d, arr })) { try { console.log(n, payloadEncoding(v)); } catch (e: any) { console.log(n, "refused", e.message.slice(0, 80)); } }
