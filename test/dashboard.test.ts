/**
 * The web dashboard in a real browser: Debian's chromium driven by playwright-core. A throw-away
 * redis-server, a few actors (echo, a ledger that fails while told to, an app nobody serves), the
 * page opened headless; it checks what a person sees (apps with their numbers, an inbox in run
 * order, a message's lifecycle, the live tail, send and ask, an XSS payload shown as text) and
 * retries a dead letter through the page's confirmation, then checks Redis. Without a browser:
 * the live tail of a page that stops reading stays bounded on the server (raw sockets).
 */
import { existsSync, readFileSync } from "node:fs";
import { connect, type Socket } from "node:net";
import { pino } from "pino";
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { echo } from "../actors/echo.js";
import {
  type ActorSystem,
  createSystem,
  type DashboardServer,
  defineActor,
  InvalidOptionError,
  Priority,
  serveDashboard,
} from "../src/index.js";
import { uniqueId, useRedis } from "./harness/redis.js";
import { waitFor } from "./harness/system.js";

/** Where a chromium may be: $CHROMIUM_PATH, then Debian's and Ubuntu's packages. */
const CHROMIUM = [process.env.CHROMIUM_PATH, "/usr/bin/chromium", "/usr/bin/chromium-browser"].find(
  (p): p is string => p !== undefined && p !== "" && existsSync(p),
);

/** Message bytes are untrusted: if this became HTML, its handler would set `__xss`. */
const XSS = "<img src=x onerror=window.__xss=1>";

describe.skipIf(CHROMIUM === undefined)(
  `dashboard in a browser${CHROMIUM === undefined ? " (skipped: no chromium found at $CHROMIUM_PATH, /usr/bin/chromium or /usr/bin/chromium-browser; .ci/run installs it)" : ""}`,
  () => {
    const redis = useRedis();
    const tag = uniqueId("dash");
    const ECHO = `echo-${tag}`;
    const LEDGER = `ledger-${tag}`;
    const PARKED = `parked-${tag}`;
    let failing = true;
    let system: ActorSystem;
    let dashboard: DashboardServer;
    let browser: Browser;
    let page: Page;

    beforeAll(async () => {
      system = await createSystem({
        appId: `ui-${tag}`,
        redis: redis().url,
        logger: pino({ level: "silent" }),
      });
      await system.spawn(echo({ id: ECHO }));
      await system.spawn(
        defineActor<{ charge: { payload: { amount: number }; reply: { charged: number } } }>({
          id: LEDGER,
          maxAttempts: 1,
          handlers: {
            charge: (payload) => {
              if (failing) throw new Error(`card declined ${XSS}`);
              return { charged: payload.amount };
            },
          },
        }),
      );
      dashboard = await serveDashboard(system, { port: 0 });
      const { chromium } = await import("playwright-core");
      browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ["--no-sandbox"] });
      page = await browser.newPage();
    }, 30_000);

    afterAll(async () => {
      await browser?.close();
      await dashboard?.close();
      await system?.shutdown();
    });

    it("lists apps with their numbers, an inbox in run order and an XSS payload as text", async () => {
      const parked = system.ref(PARKED);
      const low = await parked.tell("note", { text: "low, first" }, { priority: Priority.LOW });
      const xss = await parked.tell("note", { text: XSS }, { priority: Priority.NORMAL });
      const high = await parked.tell("note", { text: "high, last" }, { priority: Priority.HIGH });
      await system.ref(PARKED).tell("later", {}, { delayMs: 60_000 });

      await page.goto(dashboard.url);
      const row = page.locator(`#apps tr[data-app="${PARKED}"]`);
      await row.waitFor();
      await expect.poll(() => row.locator('[data-col="inbox"]').textContent()).toBe("3");
      expect(await row.locator('[data-col="scheduled"]').textContent()).toBe("1");
      expect(await row.locator('[data-col="dead"]').textContent()).toBe("0");
      expect(await row.locator('[data-col="oldest"]').textContent()).toMatch(/\d+(\.\d)? (ms|s)/);
      const echoRow = page.locator(`#apps tr[data-app="${ECHO}"]`);
      expect(await echoRow.locator("td").nth(1).textContent()).toBe("online");
      expect(await echoRow.locator(".host").textContent()).toContain(`ui-${tag}@`);

      await row.locator("a.app-link").click();
      await page.locator("#app-name", { hasText: PARKED }).waitFor();
      await expect.poll(() => page.locator("#inbox tbody tr").count()).toBe(3);
      // Run order: HIGH, then NORMAL, then LOW (strict priority).
      const ids = await page
        .locator("#inbox tbody tr")
        .evaluateAll((rows) => rows.map((r) => r.getAttribute("data-id")));
      expect(ids).toEqual([high, xss, low]);
      const xssRow = page.locator(`#inbox tr[data-id="${xss}"]`);
      expect(await xssRow.locator(".payload").textContent()).toContain(XSS);
      expect(await page.locator("#scheduled tbody tr").count()).toBe(1);
      // Shown as text: no element was made from it, and its handler never ran.
      expect(await page.locator("main img").count()).toBe(0);
      expect(await page.evaluate(() => (globalThis as { __xss?: number }).__xss)).toBeUndefined();

      // The lifecycle of a waiting message: where it sits, with its place in the run order.
      await xssRow.locator("a.msg-link").click();
      await page.locator("#message-place", { hasText: "inbox" }).waitFor();
      expect(await page.locator("#timeline .step.current .state").textContent()).toBe("waiting");
      expect(await page.locator("#timeline .step.current .detail").textContent()).toContain("position 2");
      expect(await page.locator("#message-payload").textContent()).toContain(XSS);
      expect(await page.locator("main img").count()).toBe(0);
    });

    it("shows the live tail with a type filter, and sends and asks from the page", async () => {
      await page.goto(`${dashboard.url}#app=${ECHO}`);
      await page.locator("#tail-state", { hasText: "live" }).waitFor();
      await page.fill("#tail-type", "echo");
      await page.dispatchEvent("#tail-type", "change");
      await page.locator("#tail-state", { hasText: "only echo" }).waitFor();

      await page.fill("#send-app", ECHO);
      await page.fill("#send-type", "ping");
      await page.fill("#send-payload", "{}");
      await page.click("#send-tell");
      await page.locator("#send-result", { hasText: "sent:" }).waitFor();
      await page.fill("#send-type", "echo");
      await page.fill("#send-payload", JSON.stringify({ said: XSS }));
      await page.click("#send-tell");
      await page.locator("#send-result", { hasText: "sent:" }).waitFor();
      const sentId = ((await page.locator("#send-result").textContent()) ?? "").replace("sent: ", "");
      // Its `sent` line (the newest line may already be its `completed`, which has no payload).
      const item = page.locator(`#tail li.tail-sent[data-id="${sentId}"]`);
      await item.waitFor({ timeout: 10_000 });
      expect(await item.locator(".route").textContent()).toBe(`ui-${tag} → ${ECHO}`);
      expect(await item.locator(".payload").textContent()).toContain(XSS);
      await page.locator(`#tail li.tail-completed[data-id="${sentId}"]`).waitFor({ timeout: 10_000 });
      // The filter kept out the ping, sent first.
      expect(await page.locator('#tail li[data-type="ping"]').count()).toBe(0);
      expect(await page.locator("main img").count()).toBe(0);

      await page.fill("#send-payload", JSON.stringify({ n: 7 }));
      await page.click("#send-ask");
      await page.locator("#send-result", { hasText: "reply in" }).waitFor({ timeout: 10_000 });
      expect(await page.locator("#send-result").textContent()).toContain('"n": 7');
    });

    it("retries a dead letter through the page's confirmation; Redis has it back and it is handled", async () => {
      const id = await system.ref(LEDGER).tell("charge", { amount: 12 });
      await waitFor(async () => (await system.messageStatus(id)) === "failed", 10_000, "the charge to fail");
      await page.goto(`${dashboard.url}#app=${LEDGER}`);
      const deadRow = page.locator(`#dead tr[data-id="${id}"]`);
      await deadRow.waitFor();
      expect(await deadRow.locator(".error").textContent()).toContain(`card declined ${XSS}`);
      expect(await page.locator("main img").count()).toBe(0);

      // Its lifecycle: failed, dead-lettered (where it is now).
      await deadRow.locator("a.msg-link").click();
      await page.locator("#message-place", { hasText: "dead" }).waitFor();
      const states = await page.locator("#timeline .state").allTextContents();
      expect(states).toEqual(["sent", "claimed", "failed", "dead-lettered"]);
      expect(await page.locator("#timeline .step.current .state").textContent()).toBe("dead-lettered");
      expect(await page.locator("#message-dead").textContent()).toContain("handler-error");

      // Cancel first: nothing changes.
      await deadRow.locator("input.dead-select").check();
      await page.click("#dead-retry");
      await page.locator("#confirm[open]").waitFor();
      expect(await page.locator("#confirm-text").textContent()).toContain(id);
      await page.click("#confirm-cancel");
      expect(await redis().client().zcard(`queue:${LEDGER}:dead`)).toBe(1);

      failing = false;
      await page.click("#dead-retry");
      await page.locator("#confirm[open]").waitFor();
      await page.click("#confirm-ok");
      await page.locator("#send-result", { hasText: "retried 1" }).waitFor();
      const client = redis().client();
      await waitFor(
        async () => (await client.hget(`message:${id}`, "status")) === "completed",
        10_000,
        "the retry to run",
      );
      expect(await client.zcard(`queue:${LEDGER}:dead`)).toBe(0);
      // The page follows: the message's lifecycle now ends completed, with its dead-letter history gone.
      await page.locator("#message-place", { hasText: "gone" }).waitFor({ timeout: 10_000 });
      expect(await page.locator("#timeline .step.current .state").textContent()).toBe("completed");
    });

    it("refuses POSTs without the page's token or JSON, and cross-origin ones", async () => {
      const post = (headers: Record<string, string>) =>
        fetch(`${dashboard.url}api/send`, {
          method: "POST",
          headers,
          body: JSON.stringify({ app: ECHO, type: "ping", payload: {} }),
        });
      expect((await post({ "Content-Type": "text/plain" })).status).toBe(415);
      expect((await post({ "Content-Type": "application/json" })).status).toBe(403);
      const html = await (await fetch(dashboard.url)).text();
      const token = /name="redactor-token" content="([0-9a-f]+)"/.exec(html)?.[1] ?? "";
      expect(token).toMatch(/^[0-9a-f]{48}$/);
      const ok = { "Content-Type": "application/json", "X-Redactor-Token": token };
      expect((await post({ ...ok, Origin: "http://evil.example" })).status).toBe(403);
      expect((await post(ok)).status).toBe(200);
      // Bad input is a 400 with a reason, never a 500: a null payload, bad percent-encoding.
      const nullPayload = await fetch(`${dashboard.url}api/send`, {
        method: "POST",
        headers: ok,
        body: JSON.stringify({ app: ECHO, type: "ping", payload: null }),
      });
      expect(nullPayload.status).toBe(400);
      expect((await fetch(`${dashboard.url}api/messages/%E0%A4%A`)).status).toBe(400);
      expect((await fetch(`${dashboard.url}api/apps/%E0%A4%A`)).status).toBe(400);
      await expect(serveDashboard(system, { port: -1 })).rejects.toThrow(InvalidOptionError);
    });
  },
);

/** One server-sent event, its `data` parsed (a message's payload left out). */
interface SentEvent {
  event: string;
  data: Record<string, unknown>;
}

/**
 * A live tail read by hand over a raw socket (HTTP/1.0, so the body is the bare event stream).
 * Pausing its socket makes it a page that does not read: the kernel's buffers fill, then the
 * server's.
 */
async function openTail(url: string) {
  const { hostname, port } = new URL(url);
  const socket: Socket = connect(Number(port), hostname);
  const stream = { events: [] as SentEvent[], bytes: 0, socket };
  let pending = "";
  socket.setEncoding("utf8");
  socket.on("data", (chunk: string) => {
    stream.bytes += Buffer.byteLength(chunk);
    pending += chunk;
    for (let end = pending.indexOf("\n\n"); end >= 0; end = pending.indexOf("\n\n")) {
      const lines = pending.slice(0, end).split(/\r?\n/);
      pending = pending.slice(end + 2);
      const event = lines.find((l) => l.startsWith("event: "))?.slice(7);
      const data = lines.find((l) => l.startsWith("data: "))?.slice(6);
      if (event === undefined || data === undefined) continue;
      const { payload: _payload, ...rest } = JSON.parse(data) as Record<string, unknown>;
      stream.events.push({ event, data: rest });
    }
  });
  socket.write(`GET /api/tail HTTP/1.0\r\nHost: ${hostname}:${port}\r\n\r\n`);
  await waitFor(() => stream.events.some((e) => e.event === "ready"), 10_000, "the tail to be ready");
  return stream;
}

/**
 * The most bytes the kernel holds on a loopback connection whose reader stopped reading: the
 * sender's largest send buffer (Linux autotunes it up to tcp_wmem's maximum, 4 MiB by default)
 * and the reader's receive buffer, which does not grow while it is not read (tcp_rmem's
 * default, 128 KiB), with room for the kernel's accounting.
 */
function kernelSocketBuffers(): number {
  const read = (name: string, field: number, fallback: number): number => {
    try {
      const value = Number(readFileSync(`/proc/sys/net/ipv4/${name}`, "utf8").trim().split(/\s+/)[field]);
      return Number.isFinite(value) ? value : fallback;
    } catch {
      return fallback;
    }
  };
  return read("tcp_wmem", 2, 4 * 1024 * 1024) + 2 * read("tcp_rmem", 1, 128 * 1024) + 512 * 1024;
}

/** The ids of the `sent` events of a tail, in order. */
function sentIds(stream: { events: SentEvent[] }): string[] {
  return stream.events
    .filter((e) => e.event === "message" && e.data.event === "sent")
    .map((e) => e.data.id as string);
}

describe("dashboard live tail, without a browser", () => {
  const redis = useRedis();
  const tag = uniqueId("tail");
  let system: ActorSystem;
  let dashboard: DashboardServer;

  beforeAll(async () => {
    system = await createSystem({
      appId: `ui-${tag}`,
      redis: redis().url,
      logger: pino({ level: "silent" }),
    });
    dashboard = await serveDashboard(system, { port: 0 });
  });

  afterAll(async () => {
    await dashboard?.close();
    await system?.shutdown();
  });

  it("skips a page that does not read past 1 MiB, then tells it how many it missed and follows again", async () => {
    const parked = system.ref(`parked-${tag}`);
    const reader = await openTail(dashboard.url);
    const stalled = await openTail(dashboard.url);
    stalled.socket.pause();

    // 96 sends of 256 KiB each: 24 MiB of tail events, far more than the server's 1 MiB and the
    // kernel's socket buffers.
    const blob = "x".repeat(256 * 1024);
    const sent: string[] = [];
    for (let n = 0; n < 96; n++) sent.push(await parked.tell("blob", { n, blob }));
    // The page that reads gets every one of them, and no note.
    await waitFor(() => sentIds(reader).length === sent.length, 60_000, "the reading page to get every send");
    expect(sentIds(reader)).toEqual(sent);
    expect(reader.events.filter((e) => e.event === "note")).toEqual([]);

    // The stalled page reads again: what waited for it is bounded, and it says what it missed.
    stalled.socket.resume();
    const notes = () => stalled.events.filter((e) => e.event === "note").map((e) => e.data.text as string);
    await waitFor(() => notes().length > 0, 20_000, "the stalled page's note");
    const last = await parked.tell("blob", { n: "after" });
    await waitFor(() => sentIds(stalled).includes(last), 10_000, "the stalled page to follow again");
    expect(notes()).toHaveLength(1);
    const skipped = Number(/(\d+) tail events were skipped/.exec(notes()[0] as string)?.[1]);
    // What it got is what waited for it: the server's 1 MiB, one event, and what the kernel held.
    const bound = 1024 * 1024 + blob.length + kernelSocketBuffers();
    expect(bound).toBeLessThan(12 * 1024 * 1024);
    expect(stalled.bytes).toBeLessThan(bound);
    expect(skipped).toBeGreaterThan(sent.length / 2);
    // Nothing lost without a word: what it got, then the note with the gap, then the rest, in order.
    const got = sentIds(stalled);
    expect(got.length - 1 + skipped).toBe(sent.length);
    expect(got).toEqual([...sent.slice(0, got.length - 1), last]);
    const kinds = stalled.events.map((e) => (e.event === "message" ? e.data.id : e.event));
    expect(kinds.indexOf("note")).toBe(kinds.indexOf(last) - 1);
    reader.socket.destroy();
    stalled.socket.destroy();
  }, 120_000);
});
