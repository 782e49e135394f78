/**
 * Key hygiene: `redactor forget <app>` and `redactor gc` (src/hygiene.ts) against real Redis, on
 * one server and on a 3+3 cluster; the TTLs a process leaves on its own keys at shutdown; and
 * the keyspace's list of per-app keys, which must name every per-app key the keyspace builds.
 */
import { describe, expect, it } from "vitest";
import { main } from "../src/cli/main.js";
import { perKey } from "../src/cluster.js";
import { expireProcessKeys } from "../src/hygiene.js";
import { type ActorSystem, defineActor } from "../src/index.js";
import { APP_KEY_KINDS, Keyspace, NOT_APP_KEYS } from "../src/keyspace.js";
import { HANDLES_FIELD, ROLE_FIELD, ROLE_SYSTEM, readStatus } from "../src/presence.js";
import { type Backend, backendEnv, describeBackends, useBackendSystems } from "./harness/backends.js";
import { uniqueId } from "./harness/redis-server.js";
import { startWorker, waitFor } from "./harness/system.js";

/** An app id that shows up in every name built from it. */
const SENTINEL = "Sentinel-App-7";

/**
 * The builders of `keys` that put an app id into a name that is neither one of the app's keys
 * (`appKeys`) nor classified in NOT_APP_KEYS: what forget would miss.
 */
function unlistedBuilders(keys: Keyspace): string[] {
  const listed = new Set(keys.appKeys(SENTINEL).map((k) => k.key));
  const missing: string[] = [];
  const proto = Object.getPrototypeOf(keys) as Record<string, unknown>;
  for (const name of Object.getOwnPropertyNames(proto)) {
    // `app` is the private helper that wraps an id in braces, not a name of its own.
    if (name === "constructor" || name === "app" || name.startsWith("appFrom") || name.startsWith("check")) {
      continue;
    }
    const descriptor = Object.getOwnPropertyDescriptor(proto, name);
    if (typeof descriptor?.value !== "function") continue;
    let built: unknown;
    try {
      built = (descriptor.value as (...a: string[]) => unknown).call(keys, SENTINEL, "node-1");
    } catch {
      continue;
    }
    if (typeof built !== "string" || !built.includes(SENTINEL)) continue;
    if (listed.has(built) || name in NOT_APP_KEYS) continue;
    missing.push(name);
  }
  return missing;
}

describe("the keyspace's list of an app's keys", () => {
  for (const hashTag of [false, true]) {
    it(`names every per-app key the keyspace builds (hashTag ${hashTag})`, () => {
      const keys = new Keyspace({ hashTag });
      expect(unlistedBuilders(keys)).toEqual([]);
      expect(keys.appKeys(SENTINEL).map((k) => k.kind)).toEqual([...APP_KEY_KINDS]);
      // One slot per app on the cluster layout: forget's single DEL stays in it.
      if (hashTag) for (const { key } of keys.appKeys(SENTINEL)) expect(key).toContain(`{${SENTINEL}}`);
    });
  }

  it("catches a new per-app key that nobody listed", () => {
    class Grown extends Keyspace {
      leases(app: string): string {
        return `leases:${app}`;
      }
    }
    expect(unlistedBuilders(new Grown())).toEqual(["leases"]);
  });
});

/** Runs the CLI in this process against `backend`; resolves with its exit code and output. */
async function cli(backend: Backend, args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = "";
  let err = "";
  const target = backend.cluster
    ? ["--cluster", backend.cluster.startupNodes.join(",")]
    : ["--redis", backend.server?.url ?? ""];
  const code = await main([...args, ...target], {
    out: (t) => {
      out += `${t}\n`;
    },
    err: (t) => {
      err += `${t}\n`;
    },
  });
  return { code, out, err };
}

/** A message member as a peer writes it, with the nine fields. */
function member(fields: {
  id: string;
  sender: string;
  recipient: string;
  type?: string;
  timestamp?: number;
  timeout?: number | null;
  replyTo?: string | null;
}): string {
  return JSON.stringify({
    id: fields.id,
    sender: fields.sender,
    recipient: fields.recipient,
    message_type: fields.type ?? "ping",
    payload: {},
    priority: 2,
    timestamp: fields.timestamp ?? Date.now() / 1000 - 60,
    reply_to: fields.replyTo ?? null,
    timeout: fields.timeout ?? null,
  });
}

/** Existence and size of each key, for "nothing changed" checks. */
async function footprint(backend: Backend, keys: readonly string[]): Promise<string[]> {
  const client = backend.client();
  try {
    const replies = await perKey(client, keys, (p, key) => p.type(key));
    const types = replies.map(([, t]) => String(t));
    const sizes = await Promise.all(
      keys.map((key, i) =>
        types[i] === "zset" ? client.zcard(key) : types[i] === "hash" ? client.hlen(key) : Promise.resolve(0),
      ),
    );
    return keys.map((key, i) => `${key}=${types[i]}/${sizes[i]}`);
  } finally {
    client.disconnect();
  }
}

type Echo = { ping: { payload: { n: number }; reply: { n: number } } };

describeBackends("key hygiene", (backend) => {
  const newSystem = useBackendSystems(backend);

  /** Every key of one app made to exist, by real sends and plain writes of the other kinds. */
  async function populate(system: ActorSystem, app: string): Promise<string[]> {
    const keys = backend().keys;
    const client = backend().client();
    try {
      const ref = system.ref(app);
      const ids = [await ref.tell("ping", { n: 1 }), await ref.tell("ping", { n: 2 }, { delayMs: 600_000 })];
      for (const { kind, key } of keys.appKeys(app)) {
        if ((await client.exists(key)) === 1) continue;
        if (kind === "status" || kind === "state" || kind === "timerSpecs") await client.hset(key, "f", "v");
        else if (kind === "activation") await client.set(key, "nobody@nowhere:1:deadbeef");
        else await client.zadd(key, 1, `x-${kind}`);
      }
      return ids;
    } finally {
      client.disconnect();
    }
  }

  it("forget deletes every key of an app, its message hashes and index entry; dry run deletes nothing", async () => {
    const keys = backend().keys;
    const system = await newSystem();
    const app = uniqueId("forgotten");
    const bystander = uniqueId("bystander");
    const ids = await populate(system, app);
    await system.ref(bystander).tell("ping", { n: 3 });
    const client = backend().client();
    try {
      const hashKeys = ids.map((id) => keys.message(app, id));
      expect(await client.exists(...hashKeys.slice(0, 1))).toBe(1);
      expect(await client.zscore(keys.scheduledIndex(), app)).not.toBeNull();
      const before = await footprint(
        backend(),
        keys.appKeys(app).map((k) => k.key),
      );

      const dry = await cli(backend(), ["forget", app, "--json"]);
      expect(dry.code).toBe(0);
      const planned = JSON.parse(dry.out) as {
        keys: { kind: string }[];
        messageHashes: number;
        indexEntry: boolean;
      };
      expect(planned.keys.map((k) => k.kind).sort()).toEqual([...APP_KEY_KINDS].sort());
      expect(planned.messageHashes).toBe(2);
      expect(planned.indexEntry).toBe(true);
      expect(
        await footprint(
          backend(),
          keys.appKeys(app).map((k) => k.key),
        ),
      ).toEqual(before);

      const done = await cli(backend(), ["forget", app, "--yes"]);
      expect(done.code, done.err).toBe(0);
      for (const { key } of keys.appKeys(app)) expect(await client.exists(key), key).toBe(0);
      for (const key of hashKeys) expect(await client.exists(key), key).toBe(0);
      expect(await client.zscore(keys.scheduledIndex(), app)).toBeNull();
      // Another app's keys are untouched.
      expect(await client.zcard(keys.inbox(bystander))).toBe(1);
    } finally {
      client.disconnect();
    }
  });

  it("forget refuses an app that is online (a live actor, a peer's hash) unless --force", async () => {
    const keys = backend().keys;
    const system = await newSystem();
    const actor = uniqueId("live");
    await system.spawn(defineActor<Echo>({ id: actor, handlers: { ping: async (p) => p } }));
    const refused = await cli(backend(), ["forget", actor, "--yes"]);
    expect(refused.code).toBe(1);
    expect(refused.err).toMatch(/in use.*served by/);
    const client = backend().client();
    try {
      expect(await client.exists(keys.status(actor))).toBe(1);
      const peer = uniqueId("peer");
      await client.hset(keys.status(peer), "status", "online");
      await client.zadd(keys.inbox(peer), 3000, member({ id: uniqueId("m"), sender: "x", recipient: peer }));
      const peerRefused = await cli(backend(), ["forget", peer, "--yes"]);
      expect(peerRefused.code).toBe(1);
      expect(peerRefused.err).toContain("says online");
      expect(await client.exists(keys.inbox(peer))).toBe(1);
      const forced = await cli(backend(), ["forget", peer, "--yes", "--force"]);
      expect(forced.code, forced.err).toBe(0);
      expect(await client.exists(keys.inbox(peer), keys.status(peer))).toBe(0);
    } finally {
      client.disconnect();
    }
  });

  it("a system's own appId is marked, loses its TTLs when it starts and gets them at shutdown", async () => {
    const keys = backend().keys;
    const appId = uniqueId("sys-ttl");
    const first = await newSystem({ appId });
    const client = backend().client();
    try {
      expect(await client.hget(keys.status(appId), ROLE_FIELD)).toBe(ROLE_SYSTEM);
      await first.ref(uniqueId("nobody")).tell("ping", { n: 1 });
      await first.shutdown();
      expect(await client.ttl(keys.status(appId))).toBeGreaterThan(0);
      expect(await client.ttl(keys.outbox(appId))).toBeGreaterThan(0);
      const second = await newSystem({ appId });
      expect(await client.ttl(keys.status(appId))).toBe(-1);
      expect(await client.ttl(keys.outbox(appId))).toBe(-1);
      expect((await readStatus(client, keys, appId))?.online).toBe(true);
      await second.shutdown();
    } finally {
      client.disconnect();
    }
  });

  /** Two messages a peer left for `app` two hours ago: a reply, and one whose timeout has passed. */
  async function oldMessages(app: string): Promise<string[]> {
    const old = Date.now() / 1000 - 7200;
    const members = [
      member({ id: uniqueId("resp"), sender: "HEAR_FC", recipient: app, replyTo: "cmd-1", timestamp: old }),
      member({ id: uniqueId("tel"), sender: "HEAR_FC", recipient: app, timeout: 60, timestamp: old }),
    ];
    const client = backend().client();
    try {
      await client.zadd(backend().keys.inbox(app), 2000, members[0] as string, 2001, members[1] as string);
    } finally {
      client.disconnect();
    }
    return members.sort();
  }

  /**
   * gc's dry run and `--yes` against `app`: no action and its inbox unchanged; when its hash says
   * `role system` (`marked`), the plan says it kept it as an actor.
   */
  async function gcLeavesActor(app: string, inbox: readonly string[], marked = false): Promise<void> {
    const dry = await cli(backend(), ["gc", "--grace", "1ms", "--json"]);
    expect(dry.code, dry.err).toBe(0);
    const plan = JSON.parse(dry.out) as {
      actions: { app: string }[];
      kept: { app: string; reason: string }[];
    };
    expect(plan.actions.filter((a) => a.app === app)).toEqual([]);
    if (marked) expect(plan.kept.find((k) => k.app === app)?.reason).toMatch(/an actor .*types it handles/);
    const done = await cli(backend(), ["gc", "--grace", "1ms", "--yes"]);
    expect(done.code, done.err).toBe(0);
    const client = backend().client();
    try {
      expect((await client.zrange(backend().keys.inbox(app), 0, -1)).sort()).toEqual([...inbox]);
      expect(await client.exists(backend().keys.status(app))).toBe(1);
    } finally {
      client.disconnect();
    }
  }

  it("an actor with its system's appId is an actor: no role, no TTL at shutdown, gc leaves its mail", async () => {
    const keys = backend().keys;
    const app = uniqueId("petal-app-manager");
    const system = await newSystem({ appId: app });
    const client = backend().client();
    try {
      // Marked as the process's own id until the actor with that id is spawned.
      expect(await client.hget(keys.status(app), ROLE_FIELD)).toBe(ROLE_SYSTEM);
      await system.spawn(defineActor({ id: app, handlers: { telemetry: () => {} } }));
      expect(await client.hget(keys.status(app), ROLE_FIELD)).toBeNull();
      expect(await client.hget(keys.status(app), HANDLES_FIELD)).toBe('["telemetry"]');
      await system.ref(uniqueId("nobody")).tell("ping", { n: 1 });
      await system.shutdown();
      expect((await readStatus(client, keys, app))?.online).toBe(false);
      expect(await client.ttl(keys.status(app))).toBe(-1);
      expect(await client.ttl(keys.outbox(app))).toBe(-1);
      // A peer keeps sending to the actor while it is down.
      const inbox = await oldMessages(app);
      await gcLeavesActor(app, inbox);
      // A role next to `handles` (an older redactor, or a process that marked it meanwhile) is
      // not trusted.
      await client.hset(keys.status(app), ROLE_FIELD, ROLE_SYSTEM);
      await gcLeavesActor(app, inbox, true);
      // Nor does a TTL stay on it: a process with that appId shutting down gives none.
      expect(await expireProcessKeys(client, keys, app)).toBe(false);
      expect(await client.ttl(keys.status(app))).toBe(-1);
      // The same system again (no actor spawned yet) does not mark it a process's either.
      await client.hdel(keys.status(app), ROLE_FIELD);
      const again = await newSystem({ appId: app });
      expect(await client.hget(keys.status(app), ROLE_FIELD)).toBeNull();
      await again.shutdown();
      expect(await client.ttl(keys.status(app))).toBe(-1);
      // (Its own inbox consumed what the peer had sent meanwhile.)
      await gcLeavesActor(app, await oldMessages(app));
    } finally {
      client.disconnect();
    }
  });

  it("a process using an actor's id as its appId never makes it a process's id, in either order", async () => {
    const keys = backend().keys;
    const client = backend().client();
    try {
      // The actor first, then the process with its id as appId.
      const ledger = uniqueId("ledger");
      const host = await newSystem();
      await host.spawn(defineActor({ id: ledger, handlers: { charge: () => {} } }));
      const other = await newSystem({ appId: ledger });
      expect(await client.hget(keys.status(ledger), ROLE_FIELD)).toBeNull();
      await other.shutdown();
      expect(await client.hget(keys.status(ledger), ROLE_FIELD)).toBeNull();
      await host.shutdown();
      expect(await client.ttl(keys.status(ledger))).toBe(-1);
      await gcLeavesActor(ledger, await oldMessages(ledger));

      // The process first (it marks the id), then the actor (which takes the mark away; only a
      // shared one may run next to that process's inbox); the process stops last, so its
      // shutdown would give the keys a TTL.
      const vault = uniqueId("vault");
      const early = await newSystem({ appId: vault });
      await early.ref(uniqueId("nobody")).tell("ping", { n: 1 });
      expect(await client.hget(keys.status(vault), ROLE_FIELD)).toBe(ROLE_SYSTEM);
      const actorHost = await newSystem();
      await actorHost.spawn(defineActor({ id: vault, handlers: { charge: () => {} }, activation: "shared" }));
      expect(await client.hget(keys.status(vault), ROLE_FIELD)).toBeNull();
      await actorHost.shutdown();
      await early.shutdown();
      expect((await readStatus(client, keys, vault))?.online).toBe(false);
      expect(await client.ttl(keys.status(vault))).toBe(-1);
      expect(await client.ttl(keys.outbox(vault))).toBe(-1);
      await gcLeavesActor(vault, await oldMessages(vault));

      // A process's shutdown TTL'd the keys; an actor with that id spawned later takes it back.
      const depot = uniqueId("depot");
      const before = await newSystem({ appId: depot });
      await before.ref(uniqueId("nobody")).tell("ping", { n: 1 });
      await before.shutdown();
      expect(await client.ttl(keys.status(depot))).toBeGreaterThan(0);
      expect(await client.ttl(keys.outbox(depot))).toBeGreaterThan(0);
      const later = await newSystem();
      await later.spawn(defineActor({ id: depot, handlers: { charge: () => {} } }));
      expect(await client.ttl(keys.status(depot))).toBe(-1);
      expect(await client.ttl(keys.outbox(depot))).toBe(-1);
      expect(await client.hget(keys.status(depot), ROLE_FIELD)).toBeNull();
      await later.shutdown();
      expect(await client.ttl(keys.status(depot))).toBe(-1);
      await gcLeavesActor(depot, await oldMessages(depot));
    } finally {
      client.disconnect();
    }
  }, 60_000);

  it("gc finds what dead processes left, removes it with --yes, and never touches live or peers' apps", async () => {
    const keys = backend().keys;
    const client = backend().client();
    try {
      // A live system with an actor, serving.
      const live = await newSystem();
      const echo = uniqueId("echo");
      await live.spawn(defineActor<Echo>({ id: echo, handlers: { ping: async (p) => p } }));
      expect(await live.ref<Echo>(echo).ask("ping", { n: 1 })).toEqual({ n: 1 });

      // A process that shut down cleanly, then got a late reply.
      const gone = uniqueId("gone-sys");
      const goneSystem = await newSystem({ appId: gone });
      expect(await goneSystem.ref<Echo>(echo).ask("ping", { n: 2 })).toEqual({ n: 2 });
      await goneSystem.shutdown();
      const lateReply = member({ id: uniqueId("reply"), sender: echo, recipient: gone, replyTo: "req-1" });
      await client.zadd(keys.inbox(gone), 2000, lateReply);

      // A process that was killed: its own appId and an actor it served.
      const killedSys = uniqueId("killed-sys");
      const killedActor = uniqueId("killed-actor");
      const worker = await startWorker("worker", {
        ...backendEnv(backend()),
        APP_ID: killedSys,
        ACTOR_ID: killedActor,
        HEARTBEAT_MS: "200",
      });
      await worker.kill("SIGKILL");
      await waitFor(
        async () => (await readStatus(client, keys, killedSys))?.heartbeat === "stale",
        10_000,
        "the killed process's heartbeat to go stale",
      );
      expect(await client.hget(keys.status(killedSys), ROLE_FIELD)).toBe(ROLE_SYSTEM);
      const killedReply = member({ id: uniqueId("reply"), sender: echo, recipient: killedSys, replyTo: "r" });
      const killedWork = member({ id: uniqueId("work"), sender: "x", recipient: killedSys });
      await client.zadd(keys.inbox(killedSys), 2000, killedReply, 2001, killedWork);
      // The actor of the dead process keeps its mailbox: it is an actor, not a process's leftover.
      const actorWork = member({ id: uniqueId("work"), sender: "x", recipient: killedActor });
      await client.zadd(keys.inbox(killedActor), 2000, actorWork);

      // An ask to a misspelled id: a request that expires in an inbox nobody announced.
      const typo = uniqueId("HEAR_FX");
      await expect(live.ref(typo).ask("ping", { n: 3 }, { timeoutMs: 300 })).rejects.toThrow();

      // An orphan inbox with a message that is neither a reply nor expired: kept.
      const bare = uniqueId("bare");
      await client.zadd(keys.inbox(bare), 3000, member({ id: uniqueId("b"), sender: "x", recipient: bare }));

      // Replies to the CLI, and what a CLI send leaves (with a TTL).
      const sent = await cli(backend(), ["send", echo, "ping", '{"n": 4}']);
      expect(sent.code, sent.err).toBe(0);
      expect(await client.ttl(keys.outbox("redactor-cli"))).toBeGreaterThan(0);
      // echo answers the CLI's tell: a reply in the inbox of an id nobody reads.
      await waitFor(
        async () => (await client.zcard(keys.inbox("redactor-cli"))) === 1,
        10_000,
        "the reply to the CLI",
      );

      // Peers: a hash that says online with no heartbeat, one that says offline; both with old replies.
      const peerOnline = uniqueId("py-online");
      const peerOffline = uniqueId("py-offline");
      for (const [peer, status] of [
        [peerOnline, "online"],
        [peerOffline, "offline"],
      ] as const) {
        await client.hset(keys.status(peer), "status", status, "last_seen", "1700000000", "app_id", peer);
        await client.zadd(
          keys.inbox(peer),
          2000,
          member({ id: uniqueId("r"), sender: echo, recipient: peer, replyTo: "q" }),
        );
        await client.zadd(keys.outbox(peer), 1, member({ id: uniqueId("o"), sender: peer, recipient: echo }));
      }
      await new Promise((r) => setTimeout(r, 1500)); // the typo's request is past its deadline

      const watched = [
        ...[live.appId, echo, killedActor, peerOnline, peerOffline, bare].flatMap((app) =>
          keys.appKeys(app).map((k) => k.key),
        ),
      ];
      const all = [
        ...watched,
        ...[gone, killedSys, typo, "redactor-cli"].flatMap((app) => keys.appKeys(app).map((k) => k.key)),
      ];
      const before = await footprint(backend(), all);

      // The default grace period (1 h) keeps all of it: it is all recent.
      const patient = await cli(backend(), ["gc", "--json"]);
      expect(patient.code, patient.err).toBe(0);
      const patientPlan = JSON.parse(patient.out) as { actions: { app: string }[] };
      const mine = new Set([gone, killedSys, typo, "redactor-cli"]);
      expect(patientPlan.actions.filter((a) => mine.has(a.app))).toEqual([]);

      const dry = await cli(backend(), ["gc", "--grace", "1ms", "--json"]);
      expect(dry.code, dry.err).toBe(0);
      const plan = JSON.parse(dry.out) as {
        dryRun: boolean;
        actions: { app: string; kind: string; op: string; count: number }[];
      };
      expect(plan.dryRun).toBe(true);
      const summary = (app: string) =>
        plan.actions
          .filter((a) => a.app === app)
          .map((a) => `${a.kind}:${a.op}:${a.count}`)
          .sort();
      // Its inbox: the late reply, and the inbox copy of its ask's reply if it shut down before
      // taking it (the ask resolved from the pushed copy).
      expect(summary(gone).map((a) => a.replace(/:\d+$/, ""))).toEqual([
        "inbox:remove",
        "outbox:remove",
        "status:delete",
      ]);
      // The killed process's inbox holds a message that is not a reply: its hash stays.
      expect(summary(killedSys)).toEqual(["inbox:remove:1"]);
      expect(summary(typo)).toEqual(["inbox:remove:1"]);
      expect(summary("redactor-cli")).toEqual(["inbox:remove:1", "outbox:remove:1"]);
      for (const app of [live.appId, echo, killedActor, peerOnline, peerOffline, bare]) {
        expect(summary(app), app).toEqual([]);
      }
      // The dry run removed nothing.
      expect(await footprint(backend(), all)).toEqual(before);

      const done = await cli(backend(), ["gc", "--grace", "1ms", "--yes"]);
      expect(done.code, done.err).toBe(0);
      expect(await client.exists(keys.status(gone), keys.inbox(gone), keys.outbox(gone))).toBe(0);
      expect(await client.zrange(keys.inbox(killedSys), 0, -1)).toEqual([killedWork]);
      expect(await client.exists(keys.status(killedSys))).toBe(1);
      expect(await client.exists(keys.inbox(typo))).toBe(0);
      expect(await client.exists(keys.inbox("redactor-cli"), keys.outbox("redactor-cli"))).toBe(0);
      // Live apps, the dead process's actor and the peers' apps: exactly as before.
      expect(await footprint(backend(), watched)).toEqual(before.slice(0, watched.length));
      expect(await live.ref<Echo>(echo).ask("ping", { n: 5 })).toEqual({ n: 5 });

      // Nothing left to do: a second run finds nothing of those apps.
      const again = await cli(backend(), ["gc", "--grace", "1ms", "--json"]);
      const rest = (JSON.parse(again.out) as { actions: { app: string }[] }).actions.filter((a) =>
        mine.has(a.app),
      );
      expect(rest).toEqual([]);
    } finally {
      client.disconnect();
    }
  }, 60_000);
});
