--[[
  Claims the apps whose scheduled messages are due, from the index of apps with scheduled
  messages: every entry scored at or before Redis' TIME (at most ARGV[1] of them) gets the
  claim score TIME + ARGV[2] ms + 0.5, so that another process does not promote the same app
  meanwhile; the claimer then runs promote.lua for each app and gives the entry back with
  reindex.lua. A claim ends with reindex.lua, or expires (its score passes, and the app is due
  again for anyone): a promoter that dies delays the app's messages by the claim time at most.
  Due times are whole ms, so a score with a fractional part is a claim (src/scheduler.ts proves
  the protocol). One key, the index's own slot.

  KEYS[1]  redactor:scheduled            (the index: member = app id, score = ms)

  ARGV[1]  most apps to claim
  ARGV[2]  claim duration, whole ms

  Returns { now, claim, apps, next }: Redis' TIME in ms, the claim score given to each app
  claimed, the apps claimed (possibly none), and the lowest score left in the index after the
  claims (a due hint or a claim) as a string, or '' when the index is empty.
]]
local time = redis.call('TIME')
local nowMs = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local claim = nowMs + tonumber(ARGV[2]) + 0.5
local apps = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', nowMs, 'LIMIT', 0, tonumber(ARGV[1]))
if #apps > 0 then
  local args = {}
  for _, app in ipairs(apps) do
    args[#args + 1] = claim
    args[#args + 1] = app
  end
  redis.call('ZADD', KEYS[1], unpack(args))
end
local head = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
-- As text: tostring would round to 14 digits.
return { nowMs, string.format('%.1f', claim), apps, head[2] or '' }
