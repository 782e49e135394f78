/**
 * App ids that never break the keyspace: ids are checked at createSystem, spawn, ref and in the
 * CLI, with a typed error that says what is allowed; the keyspace is injective across purposes
 * (a property test over arbitrary valid ids, both layouts); sends in one tick to ids that differ
 * only by where a separator sits land in the right inboxes; an actor named `<app>:replies` is
 * woken like any other.
 *
 * The property tests are seeded: replay a failure with IDS_SEED=<seed> (and IDS_PATH=<path>).
 */
import fc from "fast-check";
import { pino } from "pino";
import { describe, expect, it } from "vitest";
import { main } from "../src/cli/main.js";
import { idProblem, MAX_ID_BYTES } from "../src/ids.js";
import {
  type ActorSystem,
  createSystem,
  defineActor,
  InvalidIdError,
  InvalidOptionError,
  Keyspace,
  supervisor,
} from "../src/index.js";
import { freePort, uniqueId, useRedis } from "./harness/redis.js";
import { useSystems, waitFor } from "./harness/system.js";

const redis = useRedis();
const newSystem = useSystems(redis);
const silent = pino({ level: "silent" });

const SEED = Number(process.env.IDS_SEED ?? 20261129);
const PATH = process.env.IDS_PATH;
const RUNS = Number(process.env.IDS_RUNS ?? 300);

/** Every builder of Keyspace that takes an id, and the ones that take none, by purpose. */
type Purpose =
  | "inbox"
  | "outbox"
  | "processing"
  | "dead"
  | "status"
  | "channel"
  | "replyChannel"
  | "message"
  | "heartbeat"
  | "broadcastChannel";

const APP_PURPOSES = ["inbox", "outbox", "processing", "dead", "status", "channel", "replyChannel"] as const;
const PURPOSES: readonly Purpose[] = [...APP_PURPOSES, "message", "heartbeat", "broadcastChannel"];

function build(keys: Keyspace, purpose: Purpose, id: string): string {
  switch (purpose) {
    case "message":
      return keys.message("app", id);
    case "heartbeat":
      return keys.heartbeat(id);
    case "broadcastChannel":
      return keys.broadcastChannel();
    default:
      return keys[purpose](id);
  }
}

/** Whether `id` may be given to `purpose`: app ids follow the rules; message ids and nodes are any non-empty text. */
function admissible(keys: Keyspace, purpose: Purpose, id: string): boolean {
  if (purpose === "broadcastChannel") return id === "";
  if (purpose === "message" || purpose === "heartbeat") return id.length > 0;
  return idProblem(id, keys.idRules) === null;
}

/**
 * Every id that `purpose` would need to build `name`: the builder's text around a marker is its
 * fixed prefix and suffix, so reading them off `name` inverts it.
 */
function preimages(keys: Keyspace, purpose: Purpose, name: string): string[] {
  if (purpose === "broadcastChannel") return name === keys.broadcastChannel() ? [""] : [];
  const marker = "\u0000MARK\u0000";
  const template = build(keys, purpose, marker);
  const [prefix = "", suffix = ""] = template.split(marker);
  if (name.length < prefix.length + suffix.length) return [];
  if (!name.startsWith(prefix) || !name.endsWith(suffix)) return [];
  return [name.slice(prefix.length, name.length - suffix.length)];
}

/** Ids made of the pieces that key names are made of, so that near-collisions are tried. */
const pieceId = fc
  .array(
    fc.constantFrom(
      ":",
      "{",
      "}",
      "queue",
      "inbox",
      "outbox",
      "processing",
      "dead",
      "status",
      "channel",
      "replies",
      "redactor",
      "broadcast",
      "message",
      "heartbeat",
      "a",
      "x",
      " ",
      "é",
      "🚀",
      "*",
    ),
    { minLength: 1, maxLength: 6 },
  )
  .map((parts) => parts.join(""));

const anyId = fc.oneof(pieceId, fc.string({ unit: "grapheme", minLength: 1, maxLength: 12 }), fc.string());

describe("id rules", () => {
  it("accepts ordinary ids, colons, spaces, any script and emoji, up to the byte limit", () => {
    const keys = new Keyspace();
    for (const id of [
      "HEAR_FC",
      "petal-app-manager",
      "drone:42",
      "a b",
      "ç™‚",
      "🚀",
      "{x}",
      "x".repeat(MAX_ID_BYTES),
    ]) {
      expect(() => keys.checkApp(id)).not.toThrow();
    }
  });

  it.each([
    ["", "empty"],
    ["a\nb", "control-character"],
    ["a\u0000", "control-character"],
    ["\t", "control-character"],
    ["a\u007f", "control-character"],
    ["a\u0085", "control-character"],
    ["a\u2028b", "control-character"],
    ["a\ud800", "lone-surrogate"],
    ["\udc00b", "lone-surrogate"],
    ["x".repeat(MAX_ID_BYTES + 1), "too-long"],
    ["é".repeat(MAX_ID_BYTES / 2 + 1), "too-long"],
    ["broadcast", "reserved"],
  ])("refuses %j (%s) with a message that says what an id may be", (id, rule) => {
    const error = (() => {
      const keys: Keyspace = new Keyspace();
      try {
        keys.checkApp(id, "actor id");
      } catch (err) {
        return err;
      }
    })();
    expect(error).toBeInstanceOf(InvalidIdError);
    expect((error as InvalidIdError).rule).toBe(rule);
    expect((error as Error).message).toMatch(
      /^invalid actor id .*; an id is 1 to 256 bytes of text without control/,
    );
    // The id is shown escaped, on one line.
    expect([...(error as Error).message].some((c) => (c.codePointAt(0) ?? 0) < 0x20)).toBe(false);
  });

  it("refuses braces only in the hash-tagged layout, and non-strings", () => {
    expect(() => new Keyspace().checkApp("{x}")).not.toThrow();
    expect(() => new Keyspace({ hashTag: true }).checkApp("{x}")).toThrow(/holds "\{".*without \{ or \}/);
    expect(() => new Keyspace({ hashTag: true }).checkApp("a}b")).toThrow(InvalidIdError);
    expect(() => new Keyspace().checkApp(42)).toThrow(/is a number, not a string/);
    expect(() => new Keyspace().checkApp(undefined)).toThrow(InvalidIdError);
  });
});

describe("the keyspace", () => {
  it("keeps the peers' names byte for byte (docs/PROTOCOL.md)", () => {
    const keys = new Keyspace();
    expect(keys.inbox("HEAR_FC")).toBe("queue:HEAR_FC:inbox");
    expect(keys.outbox("HEAR_FC")).toBe("queue:HEAR_FC:outbox");
    expect(keys.status("HEAR_FC")).toBe("status:HEAR_FC");
    expect(keys.message("HEAR_FC", "5f0c")).toBe("message:5f0c");
    expect(new Keyspace({ hashTag: true }).message("HEAR_FC", "5f0c")).toBe("message:{HEAR_FC}:5f0c");
    expect(keys.channel("HEAR_FC")).toBe("channel:HEAR_FC");
    expect(keys.broadcastChannel()).toBe("channel:broadcast");
    expect(new Keyspace({ hashTag: true }).inbox("HEAR_FC")).toBe("queue:{HEAR_FC}:inbox");
    expect(keys.appFromChannel(keys.broadcastChannel())).toBeNull();
  });

  it("puts ask replies outside the peers' channel namespace", () => {
    const keys = new Keyspace();
    expect(keys.replyChannel("x")).toBe("redactor:replies:x");
    // Before, the system x's reply channel was the wake-up channel of an app named x:replies.
    expect(keys.replyChannel("x")).not.toBe(keys.channel("x:replies"));
  });

  for (const hashTag of [false, true]) {
    const keys = new Keyspace({ hashTag });
    const layout = hashTag ? "hash-tagged" : "default";

    it(`never gives two (purpose, id) pairs the same name, ${layout} layout`, () => {
      fc.assert(
        fc.property(fc.constantFrom(...PURPOSES), anyId, (purpose, id) => {
          if (!admissible(keys, purpose, id)) return;
          const name = build(keys, purpose, id);
          // Whatever purpose reads the name back, it finds this very pair or an id it refuses.
          for (const other of PURPOSES) {
            for (const candidate of preimages(keys, other, name)) {
              if (!admissible(keys, other, candidate)) continue;
              expect({ purpose: other, id: candidate }).toEqual({ purpose, id });
            }
          }
        }),
        { seed: SEED, path: PATH, numRuns: RUNS * 10 },
      );
    });

    it(`maps two different pairs to two names, ${layout} layout`, () => {
      const pair = fc.tuple(fc.constantFrom(...PURPOSES), anyId);
      fc.assert(
        fc.property(pair, pair, ([p1, id1], [p2, id2]) => {
          if (!admissible(keys, p1, id1) || !admissible(keys, p2, id2)) return;
          if (p1 === p2 && id1 === id2) return;
          expect(build(keys, p1, id1)).not.toBe(build(keys, p2, id2));
        }),
        { seed: SEED + 1, path: PATH, numRuns: RUNS * 10 },
      );
    });

    it(`reads the app back from each queue key, status key and channel, ${layout} layout`, () => {
      fc.assert(
        fc.property(anyId, (app) => {
          if (!admissible(keys, "inbox", app)) return;
          expect(keys.appFromInbox(keys.inbox(app))).toBe(app);
          expect(keys.appFromStatusKey(keys.status(app))).toBe(app);
          expect(keys.appFromChannel(keys.channel(app))).toBe(app);
          expect(keys.appFromChannel(keys.replyChannel(app))).toBeNull();
          for (const queue of ["inbox", "outbox", "processing", "dead"] as const) {
            expect(keys.appFromQueueKey(keys[queue](app))).toEqual({ app, queue });
          }
        }),
        { seed: SEED + 2, path: PATH, numRuns: RUNS },
      );
    });
  }

  it("found the old reply channel's collision (the property is not vacuous)", () => {
    class OldKeyspace extends Keyspace {
      override replyChannel(app: string): string {
        return `channel:${app}:replies`;
      }
    }
    const keys = new OldKeyspace();
    const name = build(keys, "replyChannel", "x");
    const clashes = PURPOSES.flatMap((p) =>
      preimages(keys, p, name)
        .filter((id) => admissible(keys, p, id))
        .map((id) => ({ p, id })),
    );
    expect(clashes).toContainEqual({ p: "channel", id: "x:replies" });
  });
});

describe("ids at the API", () => {
  it("refuses a bad appId at createSystem, before connecting", async () => {
    // Nothing listens on this port: a connection attempt would fail with another error.
    const port = await freePort();
    for (const appId of ["", "a\nb", "broadcast"]) {
      const error = await createSystem({ appId, redis: `redis://127.0.0.1:${port}`, logger: silent }).catch(
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(InvalidIdError);
      expect((error as Error).message).toMatch(/^invalid appId/);
    }
    const braces = await createSystem({
      appId: "{a}",
      keyspace: { hashTag: true },
      redis: `redis://127.0.0.1:${port}`,
      logger: silent,
    }).catch((e: unknown) => e);
    expect(braces).toBeInstanceOf(InvalidIdError);
    const missing = await createSystem({ redis: `redis://127.0.0.1:${port}` } as never).catch(
      (e: unknown) => e,
    );
    expect(missing).toBeInstanceOf(InvalidOptionError);
    expect((missing as Error).message).toMatch(/needs an appId/);
  });

  it('refuses "" and other bad ids at spawn: nothing starts, not even earlier children', async () => {
    const system = await newSystem();
    const handlers = { t: () => {} };
    expect(() => defineActor({ id: "", handlers })).toThrow(InvalidIdError);
    // A plain object (not from defineActor) is checked the same way.
    await expect(system.spawn({ id: "", handlers })).rejects.toThrow(/invalid actor id "": it is empty/);
    await expect(system.spawn({ id: "broadcast", handlers })).rejects.toThrow(/reserved/);
    await expect(system.spawn({ id: "a\nb", handlers })).rejects.toThrow(/U\+000A/);
    const first = uniqueId("first");
    const tree = supervisor({
      id: uniqueId("tree"),
      children: [
        defineActor({ id: first, handlers }),
        supervisor({ id: uniqueId("inner"), children: [{ id: "x\u0000y", handlers }] }),
      ],
    });
    await expect(system.spawn(tree)).rejects.toThrow(InvalidIdError);
    expect(system.actorIds()).not.toContain(first);
    expect(await system.status(first)).toBeNull();
  });

  it("refuses ids at defineActor and supervisor, and options out of range", () => {
    expect(() => defineActor({ id: "", handlers: {} })).toThrow(InvalidIdError);
    expect(() => defineActor({ id: "ok", handlers: {}, maxAttempts: 0 })).toThrow(InvalidOptionError);
    expect(() => defineActor({ id: "ok", handlers: {}, claimBatch: 1.5 })).toThrow(
      /claimBatch of actor "ok"/,
    );
    expect(() => supervisor({ id: "", children: [] })).toThrow(InvalidIdError);
    expect(() => supervisor({ id: "s", withinMs: 0, children: [] })).toThrow(/withinMs of supervisor "s"/);
    expect(() => supervisor({ id: "s", strategy: "one_for_none" as never, children: [] })).toThrow(
      /one of "one_for_one", "one_for_all", "rest_for_one"/,
    );
    // A minimum above the default maximum would be capped without a word.
    expect(() => supervisor({ id: "s", backoff: { minMs: 120_000 }, children: [] })).toThrow(/set maxMs too/);
    expect(() => defineActor({ id: "ok", handlers: {}, retryBackoff: { minMs: 60_000 } })).toThrow(
      InvalidOptionError,
    );
    expect(() =>
      supervisor({ id: "s", backoff: { minMs: 120_000, maxMs: 120_000 }, children: [] }),
    ).not.toThrow();
  });

  it("refuses braces at spawn in the hash-tagged layout only", async () => {
    const tagged = await newSystem({ keyspace: { hashTag: true } });
    await expect(tagged.spawn({ id: "{a}", handlers: {} })).rejects.toThrow(InvalidIdError);
    const plain = await newSystem();
    const id = `{${uniqueId("braced")}}`;
    await plain.spawn({ id, handlers: {} });
    expect(plain.actorIds()).toContain(id);
  });

  it("refuses bad ids at ref, from the system and from inside a handler", async () => {
    const system = await newSystem();
    expect(() => system.ref("")).toThrow(InvalidIdError);
    expect(() => system.ref("a\rb")).toThrow(InvalidIdError);
    expect(() => system.ref("broadcast")).toThrow(/channel:broadcast is the peers' system-wide channel/);
    const errors: string[] = [];
    const id = uniqueId("refs");
    await system.spawn(
      defineActor<{ go: { payload: Record<string, never> } }>({
        id,
        onFailure: "resume",
        maxAttempts: 1,
        handlers: {
          go: (_p, ctx) => {
            try {
              ctx.ref("");
            } catch (err) {
              errors.push((err as Error).name);
            }
          },
        },
      }),
    );
    await system.ref(id).tell("go", {});
    await waitFor(() => errors.length === 1, 5000, "the handler's ref");
    expect(errors).toEqual(["InvalidIdError"]);
  });
});

describe("names that used to be shared", () => {
  it("wakes an actor named <appId>:replies at once, and the system's asks still get replies", async () => {
    const appId = uniqueId("sys");
    // A long sweep: only the actor's own channel can wake it in time.
    const system = await newSystem({ appId, sweepMs: 60_000 });
    const seen: number[] = [];
    await system.spawn(
      defineActor<{ n: { payload: { n: number } }; sq: { payload: { n: number }; reply: number } }>({
        id: `${appId}:replies`,
        handlers: {
          n: (p) => {
            seen.push(p.n);
          },
          sq: (p) => p.n * p.n,
        },
      }),
    );
    await new Promise((r) => setTimeout(r, 200)); // past the first claim after start
    const ref = system.ref<{ n: { payload: { n: number } }; sq: { payload: { n: number }; reply: number } }>(
      `${appId}:replies`,
    );
    await ref.tell("n", { n: 1 });
    await waitFor(() => seen.length === 1, 3000, "the actor named <appId>:replies to be woken");
    await expect(ref.ask("sq", { n: 7 }, { timeoutMs: 5000 })).resolves.toBe(49);
  });

  it("lands sends made in one tick in the right inboxes when ids differ only by where a separator sits", async () => {
    const system = await newSystem({ sweepMs: 60_000 });
    const base = uniqueId("sep");
    const peer = redis().client();
    // The system's internal send path, which groups the sends of one tick by (sender, recipient).
    const internal = system as unknown as {
      tellAs(sender: string, recipient: string, type: string, payload: unknown): Promise<string>;
    };
    const pairs: [string, string][] = [
      [`${base}`, `q\nr`],
      [`${base}\nq`, `r`],
      [`${base}:q`, `r:s`],
      [`${base}`, `q:r:s`],
      [`${base}:q:r`, `s`],
    ];
    const suffix = uniqueId("to");
    const sent = await Promise.all(
      pairs.map(([sender, recipient], i) => internal.tellAs(sender, `${recipient}-${suffix}`, "t", { i })),
    );
    for (const [i, [sender, recipient]] of pairs.entries()) {
      const members = await peer.zrange(`queue:${recipient}-${suffix}:inbox`, 0, -1);
      const mine = members.map((m) => JSON.parse(m)).filter((m) => m.id === sent[i]);
      expect(mine).toHaveLength(1);
      expect(mine[0]).toMatchObject({ sender, recipient: `${recipient}-${suffix}`, payload: { i } });
    }
    // And nothing else: each inbox (all recipients differ) holds only what was sent to it.
    for (const [, recipient] of pairs) expect(await peer.zcard(`queue:${recipient}-${suffix}:inbox`)).toBe(1);
  });

  it("refuses an actor named broadcast, whose channel the peers' protocol reserves", async () => {
    const system: ActorSystem = await newSystem();
    await expect(system.spawn({ id: "broadcast", handlers: {} })).rejects.toThrow(InvalidIdError);
  });
});

describe("ids in the CLI", () => {
  function runCli(args: string[]): Promise<{ code: number; out: string; err: string }> {
    let out = "";
    let err = "";
    return main([...args, "--redis", redis().url], {
      out: (t) => {
        out += `${t}\n`;
      },
      err: (t) => {
        err += `${t}\n`;
      },
    }).then((code) => ({ code, out, err }));
  }

  it("refuses a bad app id as a usage error (exit 2) before touching Redis", async () => {
    const bad = await runCli(["inspect", "a\nb"]);
    expect(bad.code).toBe(2);
    expect(bad.err).toMatch(/invalid app id in <app> "a\\nb": it holds a control character/);
    const reserved = await runCli(["send", "broadcast", "t", "{}"]);
    expect(reserved.code).toBe(2);
    expect(reserved.err).toMatch(/reserved/);
    const from = await runCli(["send", "x", "t", "{}", "--from", ""]);
    expect(from.code).toBe(2);
    expect(from.err).toMatch(/--from/);
    const braces = await runCli(["inspect", "{x}", "--hash-tag"]);
    expect(braces.code).toBe(2);
    const fine = await runCli(["send", uniqueId("cli"), "t", "{}"]);
    expect(fine.code).toBe(0);
  });
});
