--[[
  Returns to the inbox the messages in processing that nobody will finish: those whose lease
  (or retry wait) has expired, and those whose lease holder's process is dead (its heartbeat
  key is gone), which need not wait for the lease. Attempt counts are kept.

  KEYS[1]  queue:<app>:inbox
  KEYS[2]  queue:<app>:processing

  ARGV[1]  message hash key prefix ("message:")
  ARGV[2]  heartbeat key prefix ("heartbeat:"); a lease token is "<node>/<n>"
  ARGV[3]  status of a returned message (lifecycle: processing --RELEASE--> pending)
  ARGV[4]  how many members to look at, at most

  Returns how many messages went back to the inbox.
]]
-- @include score

local inbox, processing = KEYS[1], KEYS[2]
local prefix, beatPrefix, stReleased = ARGV[1], ARGV[2], ARGV[3]
local limit = tonumber(ARGV[4])
local t = redis.call('TIME')
local nowUs = tonumber(t[1]) * 1000000 + tonumber(t[2])
local nowMs = math.floor(nowUs / 1000)

local returned = 0
local alive = {}
local members = redis.call('ZRANGE', processing, 0, limit - 1, 'WITHSCORES')
for i = 1, #members, 2 do
  local member, due = members[i], tonumber(members[i + 1])
  local ok, msg = pcall(cjson.decode, member)
  local id = ok and type(msg) == 'table' and msg.id
  if type(id) == 'number' then id = string.format('%d', id) end
  local back = due <= nowMs
  local key = type(id) == 'string' and prefix .. id or nil
  if not back and key then
    local lease = redis.call('HGET', key, 'lease')
    if lease then
      local node = string.match(lease, '^(.*)/[^/]*$')
      if node then
        if alive[node] == nil then alive[node] = redis.call('EXISTS', beatPrefix .. node) == 1 end
        back = not alive[node]
      end
    end
  end
  if back then
    redis.call('ZREM', processing, member)
    local priority, timestamp = nil, nil
    if ok and type(msg) == 'table' then priority, timestamp = msg.priority, msg.timestamp end
    redis.call('ZADD', inbox, canonicalScore(priority, timestamp, nowUs), member)
    if key then
      redis.call('HSET', key, 'status', stReleased)
      redis.call('HDEL', key, 'lease')
    end
    returned = returned + 1
  end
end
return returned
