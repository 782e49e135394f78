/**
 * Byte compatibility with the peers, both directions. The "peer" here is written with raw Redis
 * commands exactly as docs/PROTOCOL.md describes the Python and C++ programs.
 */
import type { Redis } from "ioredis";
import { describe, expect, it } from "vitest";
import { defineActor, Priority } from "../src/index.js";
import { uniqueId, useRedis } from "./harness/redis.js";
import { useSystems, waitFor, waitForValue } from "./harness/system.js";

const redis = useRedis();
const newSystem = useSystems(redis);

/** A peer that sends the way RedisProxy does: ZADD with its score, PUBLISH, then HSET. */
async function peerSend(r: Redis, msg: Record<string, unknown>): Promise<void> {
  const score = (msg.priority as number) * 1000 + (msg.timestamp as number);
  await r.zadd(`queue:${msg.recipient}:inbox`, score, JSON.stringify(msg));
  await r.publish(`channel:${msg.recipient}`, `new_message:${msg.id}`);
  await r.hset(`message:${msg.id}`, {
    status: "pending",
    sender: msg.sender as string,
    recipient: msg.recipient as string,
    timestamp: String(msg.timestamp),
    type: msg.message_type as string,
  });
}

/** A peer that receives the way RedisProxy does: ZPOPMAX, then `Message(**data)`. */
async function peerPop(r: Redis, app: string): Promise<Record<string, unknown> | null> {
  const popped = await r.zpopmax(`queue:${app}:inbox`, 1);
  if (popped.length === 0) return null;
  const data = JSON.parse(popped[0] as string) as Record<string, unknown>;
  // Message(**data) raises on any field but these nine, and MessagePriority(x) on any other value.
  expect(Object.keys(data).sort()).toEqual(
    [
      "id",
      "message_type",
      "payload",
      "priority",
      "recipient",
      "reply_to",
      "sender",
      "timeout",
      "timestamp",
    ].sort(),
  );
  expect([1, 2, 3, 4]).toContain(data.priority);
  expect(Number.isInteger(data.priority)).toBe(true);
  expect(typeof data.timestamp).toBe("number");
  expect(typeof data.payload).toBe("object");
  return data;
}

describe("wire protocol", () => {
  it("serves a peer's message and replies the way the Python peer expects", async () => {
    const peer = redis().client();
    const fcId = uniqueId("HEAR_FC");
    const peerId = uniqueId("petal");
    const system = await newSystem();
    await system.spawn(
      defineActor<{
        command: { payload: { command_id: string }; reply: { command_id: string; status: string } };
      }>({
        id: fcId,
        handlers: { command: (p) => ({ command_id: p.command_id, status: "success" }) },
      }),
    );
    const request = {
      id: "4c1f1fd3-peer-request",
      sender: peerId,
      recipient: fcId,
      message_type: "command",
      payload: { command_id: "cmd_1", command: "takeoff" },
      priority: 3,
      timestamp: Date.now() / 1000,
      reply_to: null,
      timeout: null,
    };
    await peerSend(peer, request);
    const reply = await waitForValue(() => peerPop(peer, peerId), 5000, "the reply");
    expect(reply).toMatchObject({
      sender: fcId,
      recipient: peerId,
      message_type: "command_reply",
      payload: { command_id: "cmd_1", status: "success" },
      priority: 3,
      reply_to: request.id,
      timeout: null,
    });
    await waitFor(async () => (await system.messageStatus(request.id)) === "completed", 5000, "completed");
    // The reply's metadata hash follows the peers' layout and expires.
    const replyId = reply.id as string;
    expect(await peer.hgetall(`message:${replyId}`)).toMatchObject({
      status: "pending",
      sender: fcId,
      recipient: peerId,
      type: "command_reply",
    });
    expect(await peer.ttl(`message:${replyId}`)).toBeGreaterThan(0);
  });

  it("sends to a peer with the peer's score, PUBLISH and metadata hash, readable by ZPOPMAX", async () => {
    const peer = redis().client();
    const listener = redis().client();
    const peerId = uniqueId("HEAR_FC");
    const notes: string[] = [];
    await listener.subscribe(`channel:${peerId}`);
    listener.on("message", (_c, text) => notes.push(text));
    const system = await newSystem();
    const id = await system
      .ref(peerId)
      .tell("command", { command_id: "c9", command: "land" }, { priority: Priority.HIGH });
    const [member, score] = await peer.zrange(`queue:${peerId}:inbox`, 0, -1, "WITHSCORES");
    const data = JSON.parse(member as string);
    expect(Number(score)).toBeCloseTo(3 * 1000 + data.timestamp, 3);
    expect(await peer.hgetall(`message:${id}`)).toMatchObject({
      status: "pending",
      sender: system.appId,
      recipient: peerId,
      type: "command",
    });
    await waitFor(() => notes.length > 0, 2000, "the PUBLISH");
    expect(notes).toEqual([`new_message:${id}`]);
    expect(await peerPop(peer, peerId)).toMatchObject({ id, message_type: "command", priority: 3 });
    expect(await peer.zrange(`queue:${system.appId}:outbox`, 0, -1)).toEqual([member]);
  });

  it("ask() matches a C++-style reply that has no reply_to", async () => {
    const peer = redis().client();
    const fcId = uniqueId("HEAR_FC");
    const system = await newSystem();
    type Fc = {
      command: {
        payload: { command_id: string; command: string };
        reply: { command_id: string; status: string };
      };
    };
    const answer = system.ref<Fc>(fcId).ask(
      "command",
      { command_id: "cmd_77", command: "takeoff" },
      {
        timeoutMs: 5000,
        match: (m) =>
          m.message_type === "command_response" &&
          (m.payload as { command_id?: string }).command_id === "cmd_77",
      },
    );
    // The C++ peer: pops the request, replies command_response, priority 3, reply_to unset.
    const req = (await waitForValue(() => peerPop(peer, fcId), 5000, "the request")) as {
      id: string;
      sender: string;
      timeout: number;
    };
    expect(req.sender).toBe(system.appId);
    expect(req.timeout).toBe(5);
    await peerSend(peer, {
      id: "cpp-reply-1",
      sender: fcId,
      recipient: req.sender,
      message_type: "command_response",
      payload: { command_id: "cmd_77", status: "success" },
      priority: 3,
      timestamp: Math.floor(Date.now() / 1000),
    });
    await expect(answer).resolves.toEqual({ command_id: "cmd_77", status: "success" });
  });

  it("reads presence hashes the way the peers write them", async () => {
    const peer = redis().client();
    const pyId = uniqueId("petal");
    const brokenId = uniqueId("petal-broken");
    await peer.hset(`status:${pyId}`, {
      status: "online",
      last_seen: String(Date.now() / 1000),
      app_id: pyId,
    });
    await peer.hset(`status:${brokenId}`, { status: "online" });
    const system = await newSystem();
    expect(await system.status(pyId)).toMatchObject({ status: "online", online: true, heartbeat: "none" });
    expect(await system.status(brokenId)).toMatchObject({ status: "online", online: true, lastSeen: null });
    const online = await system.listOnline();
    expect(online).toEqual(expect.arrayContaining([pyId, brokenId, system.appId]));
  });
});
