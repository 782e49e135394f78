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

  Returns how many messages went back to the inbox (0 or more; never an error).
]]
-- @include member
-- @include score
-- @include release

local t = redis.call('TIME')
local nowUs = tonumber(t[1]) * 1000000 + tonumber(t[2])
return releaseStuck(KEYS[1], KEYS[2], ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4]), nowUs, true, ARGV[5])
