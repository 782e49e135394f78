-- Puts messages in a recipient's inbox the way the peers do (ZADD, metadata hash, outbox
-- copy), with two differences: the metadata hash always expires, and the score is the
-- canonical one when the recipient's presence hash says it is a redactor inbox
-- (ordering = fifo-v1), the peers' priority * 1000 + timestamp otherwise, so that a peer
-- popping with ZPOPMAX still sees a consistent order. One ZADD per key for the whole batch.
-- Whether the recipient is a redactor inbox (canonical scores), and whether it is woken on its
-- sharded channel (its `wake` field, written when it subscribes there, src/wakeups.ts).
local function isCanonicalInbox(statusKey)
  local fields = redis.call('HMGET', statusKey, 'ordering', 'wake')
  return fields[1] == 'fifo-v1', fields[2] == 'sharded'
end

-- Enqueues the messages whose 8 send arguments start at ARGV[starts[i]] (member, id, sender,
-- recipient, message_type, timestamp, canonical score, wire score), with hash keys hashKeys[i].
-- Reads ARGV in place: no table per message, less for Lua's collector to do.
local function enqueueAll(inboxKey, outboxKey, canonical, ttl, outboxCap, status, starts, hashKeys)
  local inboxArgs, outboxArgs = {}, {}
  local scoreOffset = canonical and 6 or 7
  for i, a in ipairs(starts) do
    local hashKey = hashKeys[i]
    inboxArgs[#inboxArgs + 1] = ARGV[a + scoreOffset]
    inboxArgs[#inboxArgs + 1] = ARGV[a]
    redis.call('HSET', hashKey, 'status', status, 'sender', ARGV[a + 2], 'recipient', ARGV[a + 3],
      'timestamp', ARGV[a + 5], 'type', ARGV[a + 4])
    redis.call('EXPIRE', hashKey, ttl)
    if outboxCap > 0 then
      outboxArgs[#outboxArgs + 1] = ARGV[a + 5]
      outboxArgs[#outboxArgs + 1] = ARGV[a]
    end
  end
  if #inboxArgs > 0 then redis.call('ZADD', inboxKey, unpack(inboxArgs)) end
  if #outboxArgs > 0 then
    redis.call('ZADD', outboxKey, unpack(outboxArgs))
    redis.call('ZREMRANGEBYRANK', outboxKey, 0, -(outboxCap + 1))
  end
end

-- Tells the recipient of message `id` that it has mail. A redactor recipient that listens on its
-- sharded channel (`sharded`, in a layout that has one: `wakeChannel`, the cluster layout) is
-- woken there (SPUBLISH stays on the shard that owns the slot); any other recipient by PUBLISH
-- on `channel:<recipient>`, what the peers (and actor families) subscribe to. With
-- `pushChannel` ('' = none) a redactor recipient (`canonical`) also gets the member whole (a
-- reply, so its ask resolves without a claim), sharded when the layout is.
local function notify(canonical, sharded, channel, wakeChannel, pushChannel, id, member)
  if sharded and wakeChannel ~= '' then
    redis.call('SPUBLISH', wakeChannel, 'new_message:' .. id)
  else
    redis.call('PUBLISH', channel, 'new_message:' .. id)
  end
  if canonical and pushChannel ~= '' then
    redis.call(wakeChannel ~= '' and 'SPUBLISH' or 'PUBLISH', pushChannel, member)
  end
end
