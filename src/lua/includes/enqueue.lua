-- Puts messages in a recipient's inbox the way the peers do (ZADD, metadata hash, outbox
-- copy), with two differences: the metadata hash always expires, and the score is the
-- canonical one when the recipient's presence hash says it is a redactor inbox
-- (ordering = fifo-v1), the peers' priority * 1000 + timestamp otherwise, so that a peer
-- popping with ZPOPMAX still sees a consistent order. One ZADD per key for the whole batch.
local function isCanonicalInbox(statusKey)
  return redis.call('HGET', statusKey, 'ordering') == 'fifo-v1'
end

-- items: { member, hashKey, sender, recipient, mtype, timestamp, canonicalScore, wireScore }
local function enqueueAll(inboxKey, outboxKey, canonical, ttl, outboxCap, status, items)
  local inboxArgs, outboxArgs = {}, {}
  for _, m in ipairs(items) do
    inboxArgs[#inboxArgs + 1] = canonical and m.canonicalScore or m.wireScore
    inboxArgs[#inboxArgs + 1] = m.member
    -- attempts 0: an id sent again after it failed starts a new lifecycle.
    redis.call('HSET', m.hashKey, 'status', status, 'sender', m.sender, 'recipient', m.recipient,
      'timestamp', m.timestamp, 'type', m.mtype, 'attempts', 0)
    redis.call('EXPIRE', m.hashKey, ttl)
    if outboxCap > 0 then
      outboxArgs[#outboxArgs + 1] = m.timestamp
      outboxArgs[#outboxArgs + 1] = m.member
    end
  end
  if #inboxArgs > 0 then redis.call('ZADD', inboxKey, unpack(inboxArgs)) end
  if #outboxArgs > 0 then
    redis.call('ZADD', outboxKey, unpack(outboxArgs))
    redis.call('ZREMRANGEBYRANK', outboxKey, 0, -(outboxCap + 1))
  end
end

-- The 8 send arguments of one message starting at ARGV[a], as an enqueueAll item.
local function sendItem(a, hashKey)
  return { member = ARGV[a], hashKey = hashKey, sender = ARGV[a + 2], recipient = ARGV[a + 3],
    mtype = ARGV[a + 4], timestamp = ARGV[a + 5], canonicalScore = ARGV[a + 6], wireScore = ARGV[a + 7] }
end
