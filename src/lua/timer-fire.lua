--[[
  Fires one due durable timer, as a compare-and-set: only when its due time is still the one the
  caller read (ARGV[2]), its spec still has the generation the caller read (ARGV[3]) and its last
  tick is still the one the caller read (ARGV[10]). Then, in one step, the tick messages are sent
  into the actor's own inbox exactly as send.lua sends (inbox entry, message:<id> hash with
  status pending and a TTL, outbox copy, wake-up), the id of the last one is kept in
  timers:<app>:last, and the next due time is set (or the timer removed). Several processes may
  try the same tick: one wins, the others find it stale. A tick's id is deterministic
  (timer:<key>:<generation>:<due ms>, src/timers.ts), and a tick whose message hash exists
  already is not sent again.
  Held (ARGV[11] = '1', the policies "skip" and "once"): while the last tick sent still waits in
  the inbox (its message hash says pending: no handler has started it), no new tick is sent; the
  due ones count as missed and the timer moves on to its next due time. So a handler slower than
  its period never lets the inbox grow. ("all" sends every tick: ARGV[11] = '0'.)
  Reminded: the tick of the due time itself (ARGV[12], its hash KEYS[8]) exists already, though
  no firing sent it: it is a reminder, the scheduled message a passivated family instance left
  (src/timers.ts, ActorTimers.remind), which wakes the instance at that time. It is that due
  tick, delivered (or to be delivered) by the scheduler: it is not sent again, it becomes the
  last tick (so the next firing holds on it while it waits, and no longer), and under "skip"
  and "once" it is the one tick of this firing (no later due tick is sent).
  Everything is checked before the first write.

  KEYS[1]  timers:<app>:specs
  KEYS[2]  timers:<app>:due
  KEYS[3]  timers:<app>:last           hash: timer key -> id of the last tick sent
  KEYS[4]  queue:<app>:inbox
  KEYS[5]  queue:<app>:outbox          (the sender is the actor itself: same slot)
  KEYS[6]  status:<app>                (read: is it a redactor inbox? woken sharded?)
  KEYS[7]  message:<ARGV[10]>          the last tick's hash (read; KEYS[3] again when ARGV[10] is '')
  KEYS[8]  message:<ARGV[12]>          the hash of the due time's own tick (read: a reminder?)
  KEYS[8+i] message:<id of tick i>     (message:{app}:<id> in the cluster layout)

  ARGV[1]  timer key
  ARGV[2]  expected due time, ms
  ARGV[3]  expected generation
  ARGV[4]  next due time, ms ('' = the timer ends: spec, due time and last tick id removed)
  ARGV[5]  message hash TTL, seconds
  ARGV[6]  outbox cap (0 = no outbox copy)
  ARGV[7]  channel:<app>, the peers' wake-up channel
  ARGV[8]  the app's sharded wake-up channel ('' = the layout has none)
  ARGV[9]  status of a new message (lifecycle initial state: pending)
  ARGV[10] expected id of the last tick sent ('' = none recorded)
  ARGV[11] '1' = hold while the last tick is pending ("skip", "once"); '0' = never ("all")
  ARGV[12] the id of the due time's own tick (timer:<key>:<ARGV[3]>:<ARGV[2]>)
  then per tick i, 8 values starting at ARGV[13 + (i-1)*8], as in send.lua:
    member (message JSON), id, sender, recipient, message_type, timestamp (seconds),
    canonical score, wire score

  Returns { code, sent } (src/timers.ts, FIRE_OUTCOME):
     { 1, n }   fired: n ticks sent (ticks whose id exists already are not sent again)
     { 3, n }   reminded: the due tick is a reminder (not sent again); n later ticks sent ("all")
     { 2, 0 }   held: the last tick still waits in the inbox; none sent, next due time set
     { 0, 0 }   stale: the due time or the last tick is not the expected one (another process
                fired it, or it was cancelled or restarted)
     { -1, 0 }  stale: the spec is gone or has another generation (cancelled or restarted)
     { -2, 0 }  refused: an argument is malformed (no write)
]]
-- @include enqueue

local key, expectedDue, expectedGen, nextDue = ARGV[1], tonumber(ARGV[2]), ARGV[3], ARGV[4]
local n = (#ARGV - 12) / 8
if not expectedDue or n ~= math.floor(n) or n < 0 or #KEYS ~= 8 + n or ARGV[12] == ''
  or (nextDue ~= '' and not tonumber(nextDue)) or not tonumber(ARGV[5]) or not tonumber(ARGV[6])
  or (ARGV[11] ~= '0' and ARGV[11] ~= '1') then
  return { -2, 0 }
end
local score = redis.call('ZSCORE', KEYS[2], key)
if not score or tonumber(score) ~= expectedDue then return { 0, 0 } end
local spec = redis.call('HGET', KEYS[1], key)
local gen = spec and string.match(spec, '^{"gen":"([^"]+)"')
if gen ~= expectedGen then return { -1, 0 } end
local last = redis.call('HGET', KEYS[3], key) or ''
if last ~= ARGV[10] then return { 0, 0 } end

-- A reminder is never the last tick already (it would have moved the due time on).
local reminded = last ~= ARGV[12] and redis.call('EXISTS', KEYS[8]) == 1
local held = not reminded and n > 0 and ARGV[11] == '1' and last ~= ''
  and redis.call('HGET', KEYS[7], 'status') == ARGV[9]
local canonical, sharded = isCanonicalInbox(KEYS[6])
local starts, hashKeys = {}, {}
if not held and not (reminded and ARGV[11] == '1') then
  for i = 1, n do
    if redis.call('EXISTS', KEYS[8 + i]) == 0 then
      starts[#starts + 1] = 13 + (i - 1) * 8
      hashKeys[#hashKeys + 1] = KEYS[8 + i]
    end
  end
end

if nextDue == '' then
  redis.call('HDEL', KEYS[1], key)
  redis.call('ZREM', KEYS[2], key)
  redis.call('HDEL', KEYS[3], key)
else
  redis.call('ZADD', KEYS[2], nextDue, key)
  if #starts > 0 then redis.call('HSET', KEYS[3], key, ARGV[starts[#starts] + 1])
  elseif reminded then redis.call('HSET', KEYS[3], key, ARGV[12]) end
end
if held then return { 2, 0 } end
local ttl, cap = tonumber(ARGV[5]), tonumber(ARGV[6])
enqueueAll(KEYS[4], KEYS[5], canonical, ttl, cap, ARGV[9], starts, hashKeys)
for _, a in ipairs(starts) do notify(canonical, sharded, ARGV[7], ARGV[8], '', ARGV[a + 1], ARGV[a]) end
if reminded then return { 3, #starts } end
return { 1, #starts }
