-- Records a dead letter: a JSON entry in queue:<app>:dead scored by the time it died (ms). The
-- member is kept byte for byte: as `message` when it is UTF-8 text, else hex-encoded as
-- `message_hex` (JSON text cannot hold other bytes). Needs the member include.
local function deadLetter(deadKey, nowMs, id, reason, err, attempts, member)
  local entry = { reason = reason, at = nowMs }
  if isUtf8(member) then
    entry.message = member
  else
    entry.message_hex = (string.gsub(member, '.', function(c) return string.format('%02x', string.byte(c)) end))
  end
  if id then entry.id = id end
  if err and err ~= '' then entry.error = err end
  if attempts then entry.attempts = attempts end
  redis.call('ZADD', deadKey, nowMs, cjson.encode(entry))
end
