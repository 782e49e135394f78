#!/usr/bin/env python3
"""A Python peer of redactor, written from the wire protocol (docs/PROTOCOL.md) with redis-py.

It plays the drone's app manager against a HEAR_FC run by redactor: it sends a health check
and commands the way the Python RedisProxy does (ZADD with the peers' score, PUBLISH, and the
message:<id> hash), pops its own inbox with ZPOPMAX, and matches replies by reply_to. It also
sends a command that fails HEAR_FC's schema and reads the error redactor leaves in message:<id>.

Run it with `npm run example:python-peer`, which starts HEAR_FC first; or by hand against any
running HEAR_FC:  REDIS_URL=redis://127.0.0.1:6379 /usr/bin/python3 examples/python-peer/peer.py

Needs redis-py: `sudo apt-get install python3-redis` (Debian/Ubuntu) or `pip install redis`.
Exits 0 when every exchange worked, 1 otherwise.
"""

import json
import os
import sys
import time
import uuid

try:
    import redis
except ImportError:
    sys.exit("redis-py is missing: sudo apt-get install python3-redis  (or: pip install redis)")

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379")
SELF = os.environ.get("PEER_ID", "python-peer")
FC = os.environ.get("FC_ID", "HEAR_FC")

LOW, NORMAL, HIGH, CRITICAL = 1, 2, 3, 4
WIRE_FIELDS = {"id", "sender", "recipient", "message_type", "payload", "priority", "timestamp", "reply_to", "timeout"}
MESSAGE_TTL = 24 * 3600


def say(text):
    print(text, flush=True)


def send(r, recipient, message_type, payload, priority, timeout=None):
    """Sends one message; returns its id."""
    now = time.time()
    message = {
        "id": str(uuid.uuid4()),
        "sender": SELF,
        "recipient": recipient,
        "message_type": message_type,
        "payload": payload,
        "priority": priority,
        "timestamp": now,
        "reply_to": None,
        "timeout": timeout,
    }
    # The peers' score. A redactor inbox re-scores it from priority and timestamp when it claims.
    score = priority * 1000 + now
    # RedisProxy sends with three separate commands, hash last; a fast recipient can then have
    # finished the message before the hash says "pending", and that write would win. In one
    # MULTI/EXEC the hash is in place before the message can be claimed.
    tx = r.pipeline(transaction=True)
    tx.hset(
        f"message:{message['id']}",
        mapping={
            "status": "pending",
            "sender": SELF,
            "recipient": recipient,
            "timestamp": str(now),
            "type": message_type,
        },
    )
    tx.expire(f"message:{message['id']}", timeout or MESSAGE_TTL)
    tx.zadd(f"queue:{recipient}:inbox", {json.dumps(message): score})
    tx.publish(f"channel:{recipient}", f"new_message:{message['id']}")
    tx.execute()
    return message["id"]


def receive(r, wait_s):
    """Pops the next message from our inbox (ZPOPMAX, as the peers do), or None after wait_s."""
    deadline = time.time() + wait_s
    while time.time() < deadline:
        popped = r.zpopmax(f"queue:{SELF}:inbox", 1)
        if popped:
            member, _score = popped[0]
            message = json.loads(member)
            # Message(**data) in the Python peer raises on any other field set.
            if set(message) != WIRE_FIELDS:
                raise SystemExit(f"a message with fields {sorted(message)}, not the nine of the wire")
            r.hset(f"message:{message['id']}", "status", "processing")
            return message
        time.sleep(0.02)
    return None


def finish(r, message):
    r.hset(f"message:{message['id']}", "status", "completed")


def request(r, message_type, payload, priority, wait_s=5.0):
    """Sends a request and waits for the message whose reply_to is its id."""
    request_id = send(r, FC, message_type, payload, priority, timeout=int(wait_s))
    say(f"sent {message_type} {json.dumps(payload)} at priority {priority}")
    deadline = time.time() + wait_s
    while time.time() < deadline:
        message = receive(r, deadline - time.time())
        if message is None:
            break
        finish(r, message)
        if message["reply_to"] == request_id:
            return message
        say(f"  (meanwhile: {message['message_type']} from {message['sender']})")
    raise SystemExit(f"no reply to {message_type} within {wait_s} s")


def main():
    r = redis.Redis.from_url(REDIS_URL, decode_responses=True)
    r.hset(f"status:{SELF}", mapping={"status": "online", "last_seen": str(time.time()), "app_id": SELF})
    try:
        fc_status = r.hgetall(f"status:{FC}")
        say(f"{FC} says it is {fc_status.get('status', 'unknown')} (ordering {fc_status.get('ordering', 'none')})")

        health = request(r, "health_check", {"check_id": "py-1"}, NORMAL)
        say(f"{health['message_type']}: {health['payload']['status']}, battery {health['payload']['battery_level']}%")

        reply = request(
            r,
            "command",
            {"command_id": "py_cmd_1", "command": "takeoff", "parameters": {"altitude": 15, "speed": 3.0}},
            HIGH,
        )
        p = reply["payload"]
        if reply["message_type"] != "command_response" or p["command_id"] != "py_cmd_1":
            raise SystemExit(f"unexpected reply {reply}")
        say(f"command_response for {p['command_id']}: {p['status']} ({p.get('message', '')}), priority {reply['priority']}")

        bad_id = send(r, FC, "command", {"command_id": "py_cmd_2", "command": "goto", "parameters": {}}, HIGH)
        say("sent a goto without coordinates")
        deadline = time.time() + 5
        while r.hget(f"message:{bad_id}", "status") in ("pending", "processing") and time.time() < deadline:
            time.sleep(0.02)
        status = r.hgetall(f"message:{bad_id}")
        if status.get("status") != "failed":
            raise SystemExit(f"the bad command should have failed, its hash says {status}")
        say(f"redactor marked it {status['status']}: {status.get('error', '')}")

        telemetry = None
        deadline = time.time() + 5
        while telemetry is None and time.time() < deadline:
            message = receive(r, deadline - time.time())
            if message is None:
                break
            finish(r, message)
            if message["message_type"] == "telemetry":
                telemetry = message
        if telemetry is None:
            raise SystemExit("no telemetry within 5 s")
        t = telemetry["payload"]
        say(f"telemetry from {telemetry['sender']}: {t['flight_state']}, altitude {t['altitude']} m, battery {t['battery_level']}%")
        say("all exchanges worked")
    finally:
        r.hset(f"status:{SELF}", mapping={"status": "offline", "last_seen": str(time.time())})


if __name__ == "__main__":
    main()
