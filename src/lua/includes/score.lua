-- The canonical inbox score, the same formula as src/priority.ts:
--   2^52 + (priority - 1) * 2^50 + (2^50 - 1 - microseconds since 2024-01-01)
-- Strict priority, then oldest first, highest score runs first. Anything outside
-- [SCORE_BASE, SCORE_TOP] was scored by someone else. Needs the member include.
local SCORE_BASE = 4503599627370496
local SCORE_BAND = 1125899906842624
local SCORE_TOP = 9007199254740991
local SCORE_EPOCH_US = 1704067200000000
-- The same bounds as text: Lua's tostring would round them to 14 digits.
local SCORE_BASE_TEXT = '4503599627370496'
local SCORE_TOP_TEXT = '9007199254740991'

-- The score of a decoded message (nil or {} when it could not be decoded): always a finite
-- number in the band, whatever the message holds (NaN, infinities, strings), so no ZADD fails.
local function canonicalScore(msg, nowUs)
  local p = priorityOf(msg)
  local t = timestampOf(msg)
  local us = nowUs
  if t then us = math.floor(t * 1000000 + 0.5) end
  local rel = us - SCORE_EPOCH_US
  if not (rel >= 0) then rel = 0 elseif rel > SCORE_BAND - 1 then rel = SCORE_BAND - 1 end
  return SCORE_BASE + (p - 1) * SCORE_BAND + (SCORE_BAND - 1 - rel)
end

-- The priority a canonical score stands for (1-4), or nil for a score outside the band.
local function priorityOfScore(score)
  if not (score >= SCORE_BASE and score <= SCORE_TOP) then return nil end
  return math.floor((score - SCORE_BASE) / SCORE_BAND) + 1
end

-- The members of an inbox scored outside the canonical band (by someone else: the peers'
-- priority * 1000 + timestamp, a bare ZADD, ±inf), at most `limit` below it and `limit` above it.
local function foreignMembers(inbox, limit)
  local members = redis.call('ZRANGEBYSCORE', inbox, '-inf', '(' .. SCORE_BASE_TEXT, 'LIMIT', 0, limit)
  local above = redis.call('ZRANGEBYSCORE', inbox, '(' .. SCORE_TOP_TEXT, '+inf', 'LIMIT', 0, limit)
  for _, m in ipairs(above) do members[#members + 1] = m end
  return members
end

-- The score a send gives a decoded message in an inbox: the canonical one in a redactor inbox
-- (`canonical`, its status hash says ordering fifo-v1), the peers' priority * 1000 + timestamp
-- otherwise (src/mailbox.ts encode). For scripts that put a stored member back in an inbox.
local function inboxScore(msg, canonical, nowUs)
  if canonical then return canonicalScore(msg, nowUs) end
  return priorityOf(msg) * 1000 + (timestampOf(msg) or nowUs / 1000000)
end
