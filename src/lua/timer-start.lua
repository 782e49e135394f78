--[[
  Starts (or restarts) one durable timer of an actor: writes its spec and its first due time in
  one step. Starting a key that already exists replaces it: the new spec carries a new generation,
  so a process that read the old one and is about to fire it finds it stale (timer-fire.lua).
  When it writes, it tells the actor's incarnations in every process that its due timers changed
  (includes/timers.lua), so that each re-arms for the new head.

  KEYS[1]  timers:<app>:specs   hash: timer key -> spec JSON (src/timers.ts, TimerSpec;
                                 it begins with {"gen":"<generation>",)
  KEYS[2]  timers:<app>:due     sorted set: timer key, score = next due time, ms
  KEYS[3]  timers:<app>:last    hash: timer key -> id of the last tick sent (cleared here)
  KEYS[4]  status:<app>         (read: is the actor woken on its sharded channel?)

  ARGV[1]  timer key
  ARGV[2]  spec JSON
  ARGV[3]  first due time, ms (an integer)
  ARGV[4]  '1' = replace a timer of that key; '0' = keep it as it is (its schedule goes on)
  ARGV[5]  channel:<app>
  ARGV[6]  the app's sharded wake-up channel ('' = the layout has none)
  ARGV[7]  the hint text (src/wakeups.ts, TIMERS_CHANGED)

  Returns an outcome code (src/timers.ts, START_OUTCOME):
     1  started: there was no timer of that key
     2  replaced: a timer of that key existed and was replaced
     3  kept: a timer of that key exists and ARGV[4] is '0' (no write, no hint)
    -1  refused: an argument is malformed (no write)
]]
-- @include timers

local key, spec, due = ARGV[1], ARGV[2], tonumber(ARGV[3])
if key == '' or not due or due ~= math.floor(due) or not string.find(spec, '^{"gen":"[^"]+"')
  or (ARGV[4] ~= '0' and ARGV[4] ~= '1') or ARGV[5] == '' or ARGV[7] == '' then
  return -1
end
local existed = redis.call('HEXISTS', KEYS[1], key) == 1
if existed and ARGV[4] == '0' then return 3 end
redis.call('HSET', KEYS[1], key, spec)
redis.call('ZADD', KEYS[2], ARGV[3], key)
redis.call('HDEL', KEYS[3], key)
hintTimersChanged(KEYS[4], ARGV[5], ARGV[6], ARGV[7])
if existed then return 2 end
return 1
