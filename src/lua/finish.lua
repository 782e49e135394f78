--[[
  Ends the leases of claimed messages and writes their new status, each optionally with a
  reply sent in the same atomic step; and optionally counts the run of the next claimed message
  as it starts. A consumer sends this before it starts a message's handler (without waiting for
  the answer), so the outcomes of the messages before it and the start of its run reach Redis
  even if that handler kills the process: attempts count runs that started, and a batch-mate
  that finished is not run again. A record is written only while its lease is still the
  caller's; otherwise it is skipped and its outcome code says why. Everything is read and
  every score computed before the first write, and no write can fail.

  A completed record may carry the persisted state of its actor after that message (src/state.ts):
  it is saved into state:<app> if and only if the record is written, and only on top of the saved
  state it was computed from (its seq), so a message changes the saved state exactly once even
  when its handler ran twice. A record whose state is stale (another writer saved since, or an
  earlier state of the same batch was not written) is not written at all.

  KEYS[1]  queue:<app>:processing
  KEYS[2]  queue:<app>:inbox          (for records put back: retry, release)
  KEYS[3]  queue:<app>:dead
  KEYS[4]  state:<app>                (read and written only for records that carry a state)
  KEYS[5]  message:<id> of the message whose run starts, when ARGV[5] is not ''
  then per record: message:<id>, and when the record has a reply, 4 more:
    queue:<reply recipient>:inbox, message:<reply id>, queue:<app>:outbox, status:<reply recipient>

  ARGV[1]  message hash TTL, seconds
  ARGV[2]  outbox cap (0 = no outbox copy)
  ARGV[3]  status of a new message (for replies)
  ARGV[4]  status of a claimed message: a record is written only from this status
  ARGV[5]  lease token under which the run of KEYS[5] starts ('' = no run starts)
  then per record, 14 values:
    id, member, lease token, new status, error text ('' = none),
    dead-letter reason ('' = not dead-lettered), '1' to put it back in the inbox at its own
    canonical score ('' = not),
    retry time in ms ('' = none: else it waits in processing, unleased, until then),
    attempts, attempts to give back ('1' when the claim counted a run that never started),
    has reply ('1' / '0'),
    state seq ('' = the record saves no state; else the seq of the saved state its state was
    computed from: a whole number >= 0, 0 = none saved yet), state version, state data
  and when it has a reply, 11 more:
    reply member, reply id, sender, recipient, message_type, timestamp, canonical score,
    wire score, channel, sharded wake-up channel ('' = none), reply channel (a redactor
    recipient also gets the reply itself there, so its ask resolves without a claim; the inbox
    copy stays the reliable path). Replies cross apps, so in a cluster the caller sends them
    with send.lua first (in the recipient's slot) and finishes without them.

  Returns, when a run starts, first its outcome: n > 0 the runs started, this one included,
  -1 gone, -2 lease lost (as below); then, per record, an outcome code (src/mailbox.ts, OUTCOME):
     0  written
    -1  gone: message:<id> no longer exists (expired or deleted); nothing written
    -2  lease lost: the lease is held by another consumer, or by none (it expired and the
        message went back to the inbox); nothing written, the newer claim owns it
    -3  wrong status: the lease matches but the message is not in the claimed status
    -6  state stale: the record carries a state computed from seq n, and the saved state's seq
        is not n (nor the seq an earlier record of this call saves); nothing written
  A malformed state seq or version, or a state on a record that is put back or dead-lettered,
  is refused with an error before anything is written.
]]
-- @include member
-- @include score
-- @include enqueue
-- @include deadletter

local processing, inbox, dead, stateKey = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local ttl = tonumber(ARGV[1])
local cap = tonumber(ARGV[2])
local stNew, stProcessing = ARGV[3], ARGV[4]
local t = redis.call('TIME')
local nowUs = tonumber(t[1]) * 1000000 + tonumber(t[2])
local nowMs = math.floor(nowUs / 1000)

-- First pass, reads only: which leases are still ours, and every score a write will need.
local records, ours, results = {}, {}, {}
local startToken = ARGV[5]
local startCode
local k, a = 5, 6
local startKey = KEYS[5]
-- The saved state's seq, read when the first record that carries a state needs it; then the seq
-- this call will have saved so far.
local stateSeq
if startToken ~= '' then
  local lease = redis.call('HGET', startKey, 'lease')
  if lease == false then
    startCode = redis.call('EXISTS', startKey) == 1 and -2 or -1
  elseif lease ~= startToken then
    startCode = -2
  end
  results[1] = startCode or 0
  k = 6
end
while a <= #ARGV do
  local r = { key = KEYS[k], id = ARGV[a], member = ARGV[a + 1], token = ARGV[a + 2], status = ARGV[a + 3],
    err = ARGV[a + 4], deadReason = ARGV[a + 5], requeue = ARGV[a + 6], retryAt = ARGV[a + 7],
    attempts = ARGV[a + 8], giveBack = ARGV[a + 9], stateBase = ARGV[a + 11], stateVersion = ARGV[a + 12],
    stateData = ARGV[a + 13] }
  local hasReply = ARGV[a + 10] == '1'
  a = a + 14
  k = k + 1
  if r.stateBase ~= '' then
    local base = tonumber(r.stateBase)
    local version = tonumber(r.stateVersion)
    if not base or base < 0 or base ~= math.floor(base) or not version or version < 1 then
      return redis.error_reply('ERR finish: state seq or version of message ' .. r.id .. ' is not a whole number')
    end
    if r.deadReason ~= '' or r.requeue ~= '' or r.retryAt ~= '' then
      return redis.error_reply('ERR finish: message ' .. r.id .. ' carries a state but does not complete')
    end
    r.stateBase = base
  end
  if hasReply then
    r.replyKeys = { KEYS[k], KEYS[k + 1], KEYS[k + 2], KEYS[k + 3] }
    r.replyArg = a
    k = k + 4
    a = a + 11
  end
  local current = redis.call('HMGET', r.key, 'status', 'lease')
  local code = 0
  if not current[1] then code = -1
  elseif current[2] ~= r.token then code = -2
  elseif current[1] ~= stProcessing then code = -3
  elseif r.stateBase ~= '' then
    if not stateSeq then stateSeq = tonumber(redis.call('HGET', stateKey, 'seq') or '0') end
    if r.stateBase ~= stateSeq then code = -6
    else
      stateSeq = stateSeq + 1
      r.stateSeq = stateSeq
    end
  end
  results[#results + 1] = code
  if code == 0 then
    ours[#ours + 1] = r.member
    if r.requeue ~= '' then r.score = canonicalScore(decodeMember(r.member), nowUs) end
    if r.retryAt ~= '' then
      r.retryAt = tonumber(r.retryAt)
      if not isFinite(r.retryAt) then r.retryAt = nowMs end
    end
    if r.replyKeys then r.canonical, r.sharded = isCanonicalInbox(r.replyKeys[4]) end
    records[#records + 1] = r
  end
end
if #ours > 0 then redis.call('ZREM', processing, unpack(ours)) end

-- Second pass: the writes. Under memory pressure Redis refuses a script whose first write could
-- grow memory, and lets the rest of a script through once it has written: the first write here
-- is the ZREM above or an EXPIRE, never refused, so outcomes and starts are always written whole.
if startToken ~= '' and not startCode then
  if #ours == 0 then redis.call('EXPIRE', startKey, ttl) end
  results[1] = redis.call('HINCRBY', startKey, 'attempts', 1)
end
for _, r in ipairs(records) do
  -- lease '' rather than HDEL: one command fewer per message.
  if r.err ~= '' then
    redis.call('HSET', r.key, 'status', r.status, 'finished_at', nowMs, 'lease', '', 'error', r.err)
  else
    redis.call('HSET', r.key, 'status', r.status, 'finished_at', nowMs, 'lease', '')
  end
  redis.call('EXPIRE', r.key, ttl)
  if r.score then redis.call('ZADD', inbox, r.score, r.member) end
  if r.retryAt ~= '' then redis.call('ZADD', processing, r.retryAt, r.member) end
  if r.giveBack == '1' then redis.call('HINCRBY', r.key, 'attempts', -1) end
  if r.stateSeq then
    redis.call('HSET', stateKey, 'v', r.stateVersion, 'data', r.stateData, 'seq', r.stateSeq, 'msg', r.id,
      'at', nowMs)
  end
  if r.deadReason ~= '' then
    deadLetter(dead, nowMs, r.id, r.deadReason, r.err, tonumber(r.attempts), r.member)
  end
  if r.replyKeys then
    local rk = r.replyKeys
    enqueueAll(rk[1], rk[3], r.canonical, ttl, cap, stNew, { r.replyArg }, { rk[2] })
    local ra = r.replyArg
    notify(r.canonical, r.sharded, ARGV[ra + 8], ARGV[ra + 9], ARGV[ra + 10], ARGV[ra + 1], ARGV[ra])
  end
end
return results
