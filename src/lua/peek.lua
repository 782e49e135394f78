--[[
  The highest priority waiting in an inbox, for pre-emption: a consumer that learns that
  something outranks the rest of its claimed batch hands the rest back and claims again. The
  top of the canonical band gives its priority by its score; members scored by someone else
  (the peers' priority * 1000 + timestamp, a bare ZADD, ±inf) sit outside the band until the
  next claim re-scores them, so they are read for the priority they declare.

  KEYS[1]  queue:<app>:inbox

  ARGV[1]  how many foreign-scored members to read at most, on each side of the band

  Returns the highest priority (1-4), or 0 when the inbox is empty; never an error.
]]
-- @include member
-- @include score

local limit = tonumber(ARGV[1])
local best = 0
local top = redis.call('ZREVRANGEBYSCORE', KEYS[1], SCORE_TOP_TEXT, SCORE_BASE_TEXT, 'WITHSCORES', 'LIMIT', 0, 1)
if top[2] then best = priorityOfScore(tonumber(top[2])) or 0 end
if best == 4 then return best end
local foreign = redis.call('ZREVRANGEBYSCORE', KEYS[1], '(' .. SCORE_BASE_TEXT, '-inf', 'LIMIT', 0, limit)
local above = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. SCORE_TOP_TEXT, '+inf', 'LIMIT', 0, limit)
for _, m in ipairs(above) do foreign[#foreign + 1] = m end
for _, member in ipairs(foreign) do
  local p = priorityOf(decodeMember(member))
  if p > best then
    best = p
    if best == 4 then break end
  end
end
return best
