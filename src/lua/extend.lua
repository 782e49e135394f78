--[[
  Extends the leases of messages a consumer still holds (the one it is handling and the rest of
  its claimed batch), so a long handler is not mistaken for a dead one, and tells the consumer,
  per message, whether it still holds it: a consumer never starts a message it no longer holds.
  Never refused over maxmemory (its first write is a ZREM).

  KEYS[1]  queue:<app>:processing
  KEYS[2]  activation:<app>, when ARGV[4] is not '' (single activation)

  ARGV[1]  message hash key prefix ("message:")
  ARGV[2]  lease token of the holder
  ARGV[3]  new lease length, ms from now (Redis' clock)
  ARGV[4]  the caller's node id when the actor has a single activation ('' = shared): unless
           KEYS[2] names it, nothing is extended and every pair gets -5
  then pairs: id, member

  Returns, per pair, an outcome code (src/mailbox.ts, OUTCOME):
     0  extended: still held by the caller
    -1  gone: message:<id> no longer exists
    -2  lease lost: another consumer (or none) holds it now
    -4  not held: the lease names the caller but the member is no longer in processing
    -5  not the owner: another process owns the actor now (single activation); a process that
        froze and resumed starts nothing more of its claimed batch
]]
local t = redis.call('TIME')
local deadline = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + tonumber(ARGV[3])
local results = {}
if ARGV[4] ~= '' and redis.call('GET', KEYS[2]) ~= ARGV[4] then
  for i = 5, #ARGV, 2 do results[#results + 1] = -5 end
  return results
end
for i = 5, #ARGV, 2 do
  local lease = redis.call('HGET', ARGV[1] .. ARGV[i], 'lease')
  local code
  if lease == false then
    code = redis.call('EXISTS', ARGV[1] .. ARGV[i]) == 1 and -2 or -1
  elseif lease ~= ARGV[2] then
    code = -2
  elseif redis.call('ZREM', KEYS[1], ARGV[i + 1]) == 1 then
    -- ZREM then ZADD rather than ZADD XX: a ZREM is never refused over maxmemory, and once a
    -- script has written Redis lets the rest through, so leases are renewed under memory pressure.
    redis.call('ZADD', KEYS[1], deadline, ARGV[i + 1])
    code = 0
  else
    code = -4
  end
  results[#results + 1] = code
end
return results
