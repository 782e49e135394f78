-- Puts one message in a recipient's inbox the way the peers do (ZADD, metadata hash, outbox
-- copy), with two differences: the metadata hash always expires, and the score is the
-- canonical one when the recipient's presence hash says it is a redactor inbox
-- (ordering = fifo-v1), the peers' priority * 1000 + timestamp otherwise, so that a peer
-- popping with ZPOPMAX still sees a consistent order.
local function isCanonicalInbox(statusKey)
  return redis.call('HGET', statusKey, 'ordering') == 'fifo-v1'
end

local function enqueue(inboxKey, hashKey, outboxKey, canonical, ttl, outboxCap, status,
                       member, sender, recipient, mtype, timestamp, canonicalScoreArg, wireScoreArg)
  if canonical then
    redis.call('ZADD', inboxKey, canonicalScoreArg, member)
  else
    redis.call('ZADD', inboxKey, wireScoreArg, member)
  end
  redis.call('HSET', hashKey, 'status', status, 'sender', sender, 'recipient', recipient,
    'timestamp', timestamp, 'type', mtype)
  redis.call('EXPIRE', hashKey, ttl)
  if outboxCap > 0 then
    redis.call('ZADD', outboxKey, timestamp, member)
    redis.call('ZREMRANGEBYRANK', outboxKey, 0, -(outboxCap + 1))
  end
end
