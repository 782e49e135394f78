--[[
  Records in the index of apps with scheduled messages that `app` has one due at ARGV[3] (ms),
  or, for a promoter ending its claim, what is left. One key, the index's own slot.

  A sender (ARGV[2] = ''), after schedule.lua: the entry becomes ARGV[3] when there is none, when
  it is later (a hint for a later message), or when it is a claim (a fractional score): so a
  message scheduled while a promoter holds the app always changes the claim's score, which the
  promoter then sees. A promoter (ARGV[2] = its claim score, as due.lua returned it), after
  promote.lua: when the entry still holds its claim, nobody scheduled anything since the claim,
  so the entry becomes the next due time ARGV[3], or goes when ARGV[3] is ''; otherwise the
  entry is updated as a sender would (src/scheduler.ts proves that no message is left out).

  KEYS[1]  redactor:scheduled

  ARGV[1]  app id
  ARGV[2]  the caller's claim score ('' = a sender)
  ARGV[3]  due time, whole ms ('' = none left: only with a claim)

  Returns an outcome code:
     2  the entry was set to the due time
     1  the claim ended and the entry went (no scheduled message left)
     0  unchanged: the entry is already at or before the due time
]]
local current = redis.call('ZSCORE', KEYS[1], ARGV[1])
local due = ARGV[3] ~= '' and tonumber(ARGV[3]) or nil
if ARGV[2] ~= '' and current and tonumber(current) == tonumber(ARGV[2]) then
  if due then
    redis.call('ZADD', KEYS[1], due, ARGV[1])
    return 2
  end
  redis.call('ZREM', KEYS[1], ARGV[1])
  return 1
end
if not due then return 0 end
local score = current and tonumber(current) or nil
if score == nil or score > due or score ~= math.floor(score) then
  redis.call('ZADD', KEYS[1], due, ARGV[1])
  return 2
end
return 0
