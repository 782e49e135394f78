--[[
  Extends the leases of messages a consumer still holds (the one it is handling and the rest of
  its claimed batch), so a long handler is not mistaken for a dead one. A message whose lease
  is no longer the caller's is left alone.

  KEYS[1]  queue:<app>:processing

  ARGV[1]  message hash key prefix ("message:")
  ARGV[2]  lease token of the holder
  ARGV[3]  new lease length, ms from now (Redis' clock)
  then pairs: id, member

  Returns how many leases were extended.
]]
local t = redis.call('TIME')
local deadline = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + tonumber(ARGV[3])
local extended = 0
for i = 4, #ARGV, 2 do
  if redis.call('HGET', ARGV[1] .. ARGV[i], 'lease') == ARGV[2] then
    extended = extended + redis.call('ZADD', KEYS[1], 'XX', 'CH', deadline, ARGV[i + 1])
  end
end
return extended
