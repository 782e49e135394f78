--[[
  Cancels one durable timer of an actor: removes its spec, its due time and its last tick id in
  one step. With a condition, only when the spec is still the one the caller read (a process that
  found a spec it cannot use removes it without removing a timer someone has started since).
  When a timer went, it tells the actor's incarnations in every process (includes/timers.lua),
  so that none stays armed for it.

  KEYS[1]  timers:<app>:specs   hash: timer key -> spec JSON
  KEYS[2]  timers:<app>:due     sorted set: timer key, score = next due time, ms
  KEYS[3]  timers:<app>:last    hash: timer key -> id of the last tick sent
  KEYS[4]  status:<app>         (read: is the actor woken on its sharded channel?)

  ARGV[1]  timer key
  ARGV[2]  '0' = unconditional; '1' = only when the spec is exactly ARGV[3] ('' = there is none)
  ARGV[3]  the expected spec (with ARGV[2] = '1')
  ARGV[4]  channel:<app>
  ARGV[5]  the app's sharded wake-up channel ('' = the layout has none)
  ARGV[6]  the hint text (src/wakeups.ts, TIMERS_CHANGED)

  Returns an outcome code (src/timers.ts, CANCEL_OUTCOME):
     1  cancelled: the timer existed (spec or due time) and is gone
     0  not found: there was no timer of that key (no write, no hint)
    -1  changed: the spec is not the expected one (no write)
    -2  refused: an argument is malformed (no write)
]]
-- @include timers

local key = ARGV[1]
if key == '' or (ARGV[2] ~= '0' and ARGV[2] ~= '1') or ARGV[4] == '' or ARGV[6] == '' then
  return -2
end
local current = redis.call('HGET', KEYS[1], key)
if ARGV[2] == '1' and (current or '') ~= ARGV[3] then return -1 end
local removed = redis.call('HDEL', KEYS[1], key) + redis.call('ZREM', KEYS[2], key)
redis.call('HDEL', KEYS[3], key)
if removed > 0 then
  hintTimersChanged(KEYS[4], ARGV[4], ARGV[5], ARGV[6])
  return 1
end
return 0
