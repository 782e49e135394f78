--[[
  Moves an app's scheduled messages that are due (due time <= Redis' TIME) into its inbox,
  oldest due first, at most ARGV[2] of them: each member goes in byte for byte as it was
  scheduled, scored as send.lua would score it (the canonical score when the recipient is a
  redactor inbox, ordering fifo-v1; the peers' priority * 1000 + timestamp otherwise, both read
  from the member itself), its hash becomes `pending` (its `member` and `due` fields go), and the
  recipient is notified as by send.lua. Idempotent: a message already moved, cancelled or gone
  is only taken out of the scheduled set. All keys are in the recipient's slot.

  KEYS[1]  queue:<app>:scheduled
  KEYS[2]  queue:<app>:inbox
  KEYS[3]  status:<app>                  (read: is it a redactor inbox?)

  ARGV[1]  prefix of the message hashes (message: or message:{app}:)
  ARGV[2]  most messages to move in this call
  ARGV[3]  message hash TTL, seconds (from the delivery on)
  ARGV[4]  status of a scheduled message (lifecycle: scheduled)
  ARGV[5]  status of a due message (lifecycle: scheduled --DUE--> pending)
  ARGV[6]  channel:<app>, the peers' wake-up channel
  ARGV[7]  the app's sharded wake-up channel ('' = the layout has none)

  Returns { moved, dropped, next }: how many messages went into the inbox, how many ids were
  only taken out (hash gone, not scheduled any more, or no member), and the due time (whole ms,
  rounded up) of the earliest message still scheduled, or -1 when none is.
]]
-- @include member
-- @include score
-- @include enqueue

local time = redis.call('TIME')
local nowMs = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local nowUs = tonumber(time[1]) * 1000000 + tonumber(time[2])
local ttl = tonumber(ARGV[3])
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', nowMs, 'LIMIT', 0, tonumber(ARGV[2]))
local moved, dropped = 0, 0
if #ids > 0 then
  local canonical, sharded = isCanonicalInbox(KEYS[3])
  for _, id in ipairs(ids) do
    local hashKey = ARGV[1] .. id
    local fields = redis.call('HMGET', hashKey, 'status', 'member')
    local member = fields[2]
    if fields[1] == ARGV[4] and member then
      local msg = decodeMember(member)
      local score = inboxScore(msg, canonical, nowUs)
      redis.call('ZADD', KEYS[2], score, member)
      redis.call('HSET', hashKey, 'status', ARGV[5])
      redis.call('HDEL', hashKey, 'member', 'due')
      redis.call('EXPIRE', hashKey, ttl)
      notify(canonical, sharded, ARGV[6], ARGV[7], '', id, member)
      moved = moved + 1
    else
      dropped = dropped + 1
    end
    redis.call('ZREM', KEYS[1], id)
  end
end
local head = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
local nextDue = -1
-- Whole ms: a score's fraction orders priorities within one ms (schedule.lua), and the index
-- reads a fraction as a claim (due.lua).
if head[2] then nextDue = math.ceil(tonumber(head[2])) end
return { moved, dropped, nextDue }
