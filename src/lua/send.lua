--[[
  Sends one or more messages to one recipient, atomically: inbox entry, message:<id> hash
  (status pending + the peers' fields, with a TTL), capped outbox copy, then a wake-up for each
  (PUBLISH channel:<recipient> new_message:<id>, or for a redactor recipient in the cluster
  layout SPUBLISH redactor:wake:{recipient}), and optionally the member pushed whole (replies).
  In a cluster every key is in the recipient's slot: the caller then passes outbox cap 0 and
  KEYS[2] = KEYS[1] when the sender's outbox is in another slot, and copies it there itself.

  KEYS[1]  queue:<recipient>:inbox
  KEYS[2]  queue:<sender>:outbox
  KEYS[3]  status:<recipient>            (read: is it a redactor inbox?)
  KEYS[3+i] message:<id of message i>   (message:{recipient}:<id> in the cluster layout)

  ARGV[1]  message hash TTL, seconds
  ARGV[2]  outbox cap (0 = no outbox copy)
  ARGV[3]  channel:<recipient>, the peers' wake-up channel
  ARGV[4]  the recipient's sharded wake-up channel ('' = the layout has none)
  ARGV[5]  channel to push each member on, whole, when the recipient is a redactor app ('' = none)
  ARGV[6]  status of a new message (lifecycle initial state)
  ARGV[7]  space-separated statuses that make a send of the same id a duplicate (pending,
           processing, completed): such a message is not sent again
  ARGV[8]  values per message, S: 8, or 9 when each message carries a trace context
  then per message i, S values starting at ARGV[9 + (i-1)*S]:
    member (message JSON), id, sender, recipient, message_type, timestamp (seconds),
    canonical score, wire score,
    [S = 9] traceparent (W3C trace context, written to the hash's `traceparent` field; '' = none)

  Returns the positions (0-based) of the messages not sent because they are duplicates (whose
  hash TTL starts again); an error reply, before anything is written, when ARGV[8] is not 8 or
  9 or the values do not divide into messages of that many.
]]
-- @include enqueue

local ttl = tonumber(ARGV[1])
local cap = tonumber(ARGV[2])
local stride = tonumber(ARGV[8])
if (stride ~= 8 and stride ~= 9) or (#ARGV - 8) % stride ~= 0 then
  return redis.error_reply('ERR send.lua: ARGV[8] must be 8 or 9 and divide the message values')
end
local canonical, sharded = isCanonicalInbox(KEYS[3])
local duplicate = {}
for status in string.gmatch(ARGV[7], '%S+') do duplicate[status] = true end
local n = (#ARGV - 8) / stride
local starts, hashKeys, skipped, seen = {}, {}, {}, {}
local fresh = {}
for i = 1, n do
  local a = 9 + (i - 1) * stride
  local id = ARGV[a + 1]
  local current = redis.call('HGET', KEYS[3 + i], 'status')
  -- A duplicate: already waiting, running or done, or earlier in this very batch.
  if seen[id] or (current and duplicate[current]) then
    skipped[#skipped + 1] = i - 1
    -- A repeat touches the hash (its TTL starts again): a caller that waits for replicas
    -- (WAIT) after a repeated send then waits for this write, and with it for the message.
    if current and not seen[id] then redis.call('EXPIRE', KEYS[3 + i], ttl) end
  else
    seen[id] = true
    starts[#starts + 1] = a
    hashKeys[#hashKeys + 1] = KEYS[3 + i]
    -- Sent again after it failed or timed out: a new lifecycle, attempts from zero.
    if current then fresh[#fresh + 1] = KEYS[3 + i] end
  end
end
enqueueAll(KEYS[1], KEYS[2], canonical, ttl, cap, ARGV[6], starts, hashKeys)
for _, key in ipairs(fresh) do
  redis.call('HDEL', key, 'attempts', 'lease', 'error', 'finished_at', 'traceparent')
end
if stride == 9 then
  for i, a in ipairs(starts) do
    if ARGV[a + 8] ~= '' then redis.call('HSET', hashKeys[i], 'traceparent', ARGV[a + 8]) end
  end
end
-- One notification per message, as the peers send them: listeners may count on each id.
for _, a in ipairs(starts) do notify(canonical, sharded, ARGV[3], ARGV[4], ARGV[5], ARGV[a + 1], ARGV[a]) end
return skipped
