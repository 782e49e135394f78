--[[
  Reads only: would finish.lua write these records that carry a persisted state? On a cluster
  a reply is sent (send.lua, in its recipient's slot) before the record of its request is
  finished (in the app's slot); this check, in the app's slot, comes before the reply, so that
  a run whose state would be refused (its lease is lost, or another writer saved a newer state)
  sends no reply. It judges every record exactly as finish.lua's first pass does, the seq of
  the saved state advancing with each record that would be written. Writes nothing.

  KEYS[1]  state:<app>
  then per record: message:<id>

  ARGV[1]  status of a claimed message: a record is written only from this status
  then per record, 2 values:
    lease token, state seq (the seq of the saved state its state was computed from, >= 0)

  Returns, per record, the outcome code finish.lua would give it now (src/mailbox.ts, OUTCOME):
     0  would be written
    -1  gone: message:<id> no longer exists
    -2  lease lost: the lease is held by another consumer, or by none
    -3  wrong status: the lease matches but the message is not in the claimed status
    -6  state stale: the saved state's seq is not the one its state was computed from
  A malformed state seq is refused with an error.
]]
local stProcessing = ARGV[1]
local stateSeq = tonumber(redis.call('HGET', KEYS[1], 'seq') or '0')
local results = {}
for i = 2, #KEYS do
  local a = 2 + (i - 2) * 2
  local token, base = ARGV[a], tonumber(ARGV[a + 1])
  if not base or base < 0 or base ~= math.floor(base) then
    return redis.error_reply('ERR state-check: state seq ' .. tostring(ARGV[a + 1]) .. ' is not a whole number')
  end
  local current = redis.call('HMGET', KEYS[i], 'status', 'lease')
  local code = 0
  if not current[1] then code = -1
  elseif current[2] ~= token then code = -2
  elseif current[1] ~= stProcessing then code = -3
  elseif base ~= stateSeq then code = -6
  else stateSeq = stateSeq + 1 end
  results[#results + 1] = code
end
return results
