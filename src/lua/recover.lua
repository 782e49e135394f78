--[[
  Returns to the inbox the messages in processing that nobody will finish: those whose lease
  (or retry wait) has expired, and those whose lease holder's process is dead (its heartbeat
  key is gone), which need not wait for the lease. The caller's own leases are never taken for
  a dead holder's. Attempt counts are kept.

  KEYS[1]  queue:<app>:inbox
  KEYS[2]  queue:<app>:processing

  ARGV[1]  message hash key prefix ("message:")
  ARGV[2]  heartbeat key prefix ("heartbeat:"); a lease token is "<node>/<n>"
  ARGV[3]  status of a returned message (lifecycle: processing --RELEASE--> pending)
  ARGV[4]  how many members to look at, at most
  ARGV[5]  the caller's node id: alive by definition
  ARGV[6]  '' to judge lease holders by their heartbeat keys here (one server); in a cluster,
           where those keys live in other slots, a JSON array of the node ids the caller found
           dead (the holders it does not name are taken for alive)

  Returns { released, unknown }: how many messages went back to the inbox (0 or more), and,
  when ARGV[6] is a list, the holders of unexpired leases it did not name (besides the caller),
  for the caller to judge before the next call; never an error.
]]
-- @include member
-- @include score
-- @include release

local t = redis.call('TIME')
local nowUs = tonumber(t[1]) * 1000000 + tonumber(t[2])
local judged, unknown = nil, {}
if ARGV[6] ~= '' then
  judged = {}
  for _, node in ipairs(cjson.decode(ARGV[6])) do judged[node] = true end
end
local released = releaseStuck(KEYS[1], KEYS[2], ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4]), nowUs, true,
  ARGV[5], judged, unknown)
return { released, unknown }
