--[[
  The highest priority waiting in an inbox, for pre-emption: a consumer that learns that
  something outranks the rest of its claimed batch hands the rest back and claims again.
  Members scored by someone else (the peers' priority * 1000 + timestamp, a bare ZADD, ±inf) sit
  outside the canonical band, in an order that says nothing of their priority (a peer's clock
  may run ahead; a bare ZADD's score is anything), so first each of them that reads as a message
  gets its canonical score, as the next claim would give it (up to ARGV[1] of them; members
  that do not read as a message are left for the claim, which dead-letters them). The top of the
  band then has the highest priority waiting.

  KEYS[1]  queue:<app>:inbox

  ARGV[1]  how many foreign-scored members to re-score at most, on each side of the band

  Returns the highest priority (1-4), or 0 when the inbox is empty; never an error (over
  maxmemory a re-score may be refused: the priorities it read are still returned).
]]
-- @include member
-- @include score

local limit = tonumber(ARGV[1])
local t = redis.call('TIME')
local nowUs = tonumber(t[1]) * 1000000 + tonumber(t[2])
local best = 0
local foreign = foreignMembers(KEYS[1], limit)
local rescored = {}
for _, member in ipairs(foreign) do
  local msg = decodeMember(member)
  if msg and idOf(msg) then
    local score = canonicalScore(msg, nowUs)
    rescored[#rescored + 1] = score
    rescored[#rescored + 1] = member
    local p = priorityOfScore(score)
    if p > best then best = p end
  end
end
if #rescored > 0 then pcall(redis.call, 'ZADD', KEYS[1], unpack(rescored)) end
local top = redis.call('ZREVRANGEBYSCORE', KEYS[1], SCORE_TOP_TEXT, SCORE_BASE_TEXT, 'WITHSCORES', 'LIMIT', 0, 1)
if top[2] then
  local p = priorityOfScore(tonumber(top[2])) or 0
  if p > best then best = p end
end
return best
