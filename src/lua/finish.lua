--[[
  Ends the leases of claimed messages and writes their new status, each optionally with a
  reply sent in the same atomic step. A record whose lease is no longer ours (it expired and
  someone else claimed the message) is skipped: the newer claim owns it.

  KEYS[1]  queue:<app>:processing
  KEYS[2]  queue:<app>:inbox          (for records put back: retry, release)
  KEYS[3]  queue:<app>:dead
  then per record: message:<id>, and when the record has a reply, 4 more:
    queue:<reply recipient>:inbox, message:<reply id>, queue:<app>:outbox, status:<reply recipient>

  ARGV[1]  message hash TTL, seconds
  ARGV[2]  outbox cap (0 = no outbox copy)
  ARGV[3]  status of a new message (for replies)
  then per record, 11 values:
    id, member, lease token, new status, error text ('' = none),
    dead-letter reason ('' = not dead-lettered), inbox score to put it back at ('' = not),
    retry time in ms ('' = none: else it waits in processing, unleased, until then),
    attempts, attempts to give back ('1' when released unprocessed, else '0'),
    has reply ('1' / '0')
  and when it has a reply, 9 more:
    reply member, reply id, sender, recipient, message_type, timestamp, canonical score,
    wire score, channel

  Returns, per record, 1 when written and 0 when the lease was lost.
]]
-- @include enqueue
-- @include deadletter

local processing, inbox, dead = KEYS[1], KEYS[2], KEYS[3]
local ttl = tonumber(ARGV[1])
local cap = tonumber(ARGV[2])
local stNew = ARGV[3]
local t = redis.call('TIME')
local nowMs = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

local results = {}
local k, a = 4, 4
while a <= #ARGV do
  local id, member, token, status, err, deadReason, requeue, retryAt, attempts, giveBack, hasReply =
    ARGV[a], ARGV[a + 1], ARGV[a + 2], ARGV[a + 3], ARGV[a + 4], ARGV[a + 5], ARGV[a + 6], ARGV[a + 7],
    ARGV[a + 8], ARGV[a + 9], ARGV[a + 10]
  local key = KEYS[k]
  a = a + 11
  k = k + 1
  local ours = token == '' or redis.call('HGET', key, 'lease') == token
  if ours then
    redis.call('ZREM', processing, member)
    redis.call('HSET', key, 'status', status, 'finished_at', nowMs)
    if err ~= '' then redis.call('HSET', key, 'error', err) end
    redis.call('HDEL', key, 'lease')
    redis.call('EXPIRE', key, ttl)
    if requeue ~= '' then redis.call('ZADD', inbox, requeue, member) end
    if retryAt ~= '' then redis.call('ZADD', processing, retryAt, member) end
    if giveBack ~= '0' then redis.call('HINCRBY', key, 'attempts', -tonumber(giveBack)) end
    if deadReason ~= '' then deadLetter(dead, nowMs, id, deadReason, err, tonumber(attempts), member) end
  end
  if hasReply == '1' then
    if ours then
      local replyInbox, replyKey, outbox, replyStatus = KEYS[k], KEYS[k + 1], KEYS[k + 2], KEYS[k + 3]
      enqueue(replyInbox, replyKey, outbox, isCanonicalInbox(replyStatus), ttl, cap, stNew,
        ARGV[a], ARGV[a + 2], ARGV[a + 3], ARGV[a + 4], ARGV[a + 5], ARGV[a + 6], ARGV[a + 7])
      redis.call('PUBLISH', ARGV[a + 8], 'new_message:' .. ARGV[a + 1])
    end
    k = k + 4
    a = a + 9
  end
  results[#results + 1] = ours and 1 or 0
end
return results
