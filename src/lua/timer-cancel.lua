--[[
  Cancels one durable timer of an actor: removes its spec and its due time in one step. With a
  condition, only when the spec is still the one the caller read (a process that found a spec it
  cannot use removes it without removing a timer someone has started since).

  KEYS[1]  timers:<app>:specs   hash: timer key -> spec JSON
  KEYS[2]  timers:<app>:due     sorted set: timer key, score = next due time, ms

  ARGV[1]  timer key
  ARGV[2]  '0' = unconditional; '1' = only when the spec is exactly ARGV[3] ('' = there is none)
  ARGV[3]  the expected spec (with ARGV[2] = '1')

  Returns an outcome code (src/timers.ts, CANCEL_OUTCOME):
     1  cancelled: the timer existed (spec or due time) and is gone
     0  not found: there was no timer of that key
    -1  changed: the spec is not the expected one (no write)
]]
local key = ARGV[1]
local current = redis.call('HGET', KEYS[1], key)
if ARGV[2] == '1' and (current or '') ~= ARGV[3] then return -1 end
local removed = redis.call('HDEL', KEYS[1], key) + redis.call('ZREM', KEYS[2], key)
if removed > 0 then return 1 end
return 0
