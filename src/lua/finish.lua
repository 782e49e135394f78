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
    dead-letter reason ('' = not dead-lettered), '1' to put it back in the inbox at its own
    canonical score ('' = not),
    retry time in ms ('' = none: else it waits in processing, unleased, until then),
    attempts, attempts to give back ('1' when released unprocessed, else '0'),
    has reply ('1' / '0')
  and when it has a reply, 10 more:
    reply member, reply id, sender, recipient, message_type, timestamp, canonical score,
    wire score, channel, reply channel (a redactor recipient also gets the reply itself there,
    so its ask resolves without a claim; the inbox copy stays the reliable path)

  Returns, per record, 1 when written and 0 when the lease was lost.
]]
-- @include score
-- @include enqueue
-- @include deadletter

local processing, inbox, dead = KEYS[1], KEYS[2], KEYS[3]
local ttl = tonumber(ARGV[1])
local cap = tonumber(ARGV[2])
local stNew = ARGV[3]
local t = redis.call('TIME')
local nowUs = tonumber(t[1]) * 1000000 + tonumber(t[2])
local nowMs = math.floor(nowUs / 1000)

-- First pass: which leases are still ours; their members leave processing in one ZREM.
local records, ours = {}, {}
local k, a = 4, 4
while a <= #ARGV do
  local r = { key = KEYS[k], id = ARGV[a], member = ARGV[a + 1], token = ARGV[a + 2], status = ARGV[a + 3],
    err = ARGV[a + 4], deadReason = ARGV[a + 5], requeue = ARGV[a + 6], retryAt = ARGV[a + 7],
    attempts = ARGV[a + 8], giveBack = ARGV[a + 9] }
  a = a + 11
  k = k + 1
  if ARGV[a - 1] == '1' then
    r.replyKeys = { KEYS[k], KEYS[k + 1], KEYS[k + 2], KEYS[k + 3] }
    r.replyArg = a
    k = k + 4
    a = a + 10
  end
  r.ours = r.token == '' or redis.call('HGET', r.key, 'lease') == r.token
  if r.ours then ours[#ours + 1] = r.member end
  records[#records + 1] = r
end
if #ours > 0 then redis.call('ZREM', processing, unpack(ours)) end

-- Second pass: the writes.
local results = {}
for _, r in ipairs(records) do
  if r.ours then
    -- lease '' rather than HDEL: one command fewer per message.
    if r.err ~= '' then
      redis.call('HSET', r.key, 'status', r.status, 'finished_at', nowMs, 'lease', '', 'error', r.err)
    else
      redis.call('HSET', r.key, 'status', r.status, 'finished_at', nowMs, 'lease', '')
    end
    redis.call('EXPIRE', r.key, ttl)
    if r.requeue ~= '' then
      local ok, msg = pcall(cjson.decode, r.member)
      if not ok or type(msg) ~= 'table' then msg = {} end
      redis.call('ZADD', inbox, canonicalScore(msg.priority, msg.timestamp, nowUs), r.member)
    end
    if r.retryAt ~= '' then redis.call('ZADD', processing, r.retryAt, r.member) end
    if r.giveBack ~= '0' then redis.call('HINCRBY', r.key, 'attempts', -tonumber(r.giveBack)) end
    if r.deadReason ~= '' then
      deadLetter(dead, nowMs, r.id, r.deadReason, r.err, tonumber(r.attempts), r.member)
    end
    if r.replyKeys then
      local rk = r.replyKeys
      local canonical = isCanonicalInbox(rk[4])
      enqueueAll(rk[1], rk[3], canonical, ttl, cap, stNew, { r.replyArg }, { rk[2] })
      redis.call('PUBLISH', ARGV[r.replyArg + 8], 'new_message:' .. ARGV[r.replyArg + 1])
      if canonical then redis.call('PUBLISH', ARGV[r.replyArg + 9], ARGV[r.replyArg]) end
    end
  end
  results[#results + 1] = r.ours and 1 or 0
end
return results
