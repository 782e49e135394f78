--[[
  Fires one due durable timer, as a compare-and-set: only when its due time is still the one the
  caller read (ARGV[2]) and its spec still has the generation the caller read (ARGV[3]). Then, in
  one step, the tick messages are sent into the actor's own inbox exactly as send.lua sends
  (inbox entry, message:<id> hash with status pending and a TTL, outbox copy, wake-up), and the
  next due time is set (or the timer removed). Several processes may try the same tick: one
  wins, the others find it stale. A tick's id is deterministic (timer:<key>:<generation>:<due
  ms>, src/timers.ts), and a tick whose message hash exists already is not sent again.
  Everything is checked before the first write.

  KEYS[1]  timers:<app>:specs
  KEYS[2]  timers:<app>:due
  KEYS[3]  queue:<app>:inbox
  KEYS[4]  queue:<app>:outbox          (the sender is the actor itself: same slot)
  KEYS[5]  status:<app>                (read: is it a redactor inbox?)
  KEYS[5+i] message:<id of tick i>     (message:{app}:<id> in the cluster layout)

  ARGV[1]  timer key
  ARGV[2]  expected due time, ms
  ARGV[3]  expected generation
  ARGV[4]  next due time, ms ('' = the timer ends: spec and due time removed)
  ARGV[5]  message hash TTL, seconds
  ARGV[6]  outbox cap (0 = no outbox copy)
  ARGV[7]  channel:<app>, the peers' wake-up channel
  ARGV[8]  the app's sharded wake-up channel ('' = the layout has none)
  ARGV[9]  status of a new message (lifecycle initial state)
  then per tick i, 8 values starting at ARGV[10 + (i-1)*8], as in send.lua:
    member (message JSON), id, sender, recipient, message_type, timestamp (seconds),
    canonical score, wire score

  Returns { code, sent } (src/timers.ts, FIRE_OUTCOME):
     { 1, n }   fired: n ticks sent (ticks whose id exists already are not sent again)
     { 0, 0 }   stale: the due time is not the expected one (another process fired it, or it
                was cancelled or restarted)
     { -1, 0 }  stale: the spec is gone or has another generation (cancelled or restarted)
     { -2, 0 }  refused: an argument is malformed (no write)
]]
-- @include enqueue

local key, expectedDue, expectedGen, nextDue = ARGV[1], tonumber(ARGV[2]), ARGV[3], ARGV[4]
local n = (#ARGV - 9) / 8
if not expectedDue or n ~= math.floor(n) or #KEYS ~= 5 + n
  or (nextDue ~= '' and not tonumber(nextDue)) or not tonumber(ARGV[5]) or not tonumber(ARGV[6]) then
  return { -2, 0 }
end
local score = redis.call('ZSCORE', KEYS[2], key)
if not score or tonumber(score) ~= expectedDue then return { 0, 0 } end
local spec = redis.call('HGET', KEYS[1], key)
local gen = spec and string.match(spec, '^{"gen":"([^"]+)"')
if gen ~= expectedGen then return { -1, 0 } end

local canonical, sharded = isCanonicalInbox(KEYS[5])
local starts, hashKeys = {}, {}
for i = 1, n do
  if redis.call('EXISTS', KEYS[5 + i]) == 0 then
    starts[#starts + 1] = 10 + (i - 1) * 8
    hashKeys[#hashKeys + 1] = KEYS[5 + i]
  end
end

if nextDue == '' then
  redis.call('HDEL', KEYS[1], key)
  redis.call('ZREM', KEYS[2], key)
else
  redis.call('ZADD', KEYS[2], nextDue, key)
end
local ttl, cap = tonumber(ARGV[5]), tonumber(ARGV[6])
enqueueAll(KEYS[3], KEYS[4], canonical, ttl, cap, ARGV[9], starts, hashKeys)
for _, a in ipairs(starts) do notify(canonical, sharded, ARGV[7], ARGV[8], '', ARGV[a + 1], ARGV[a]) end
return { 1, #starts }
