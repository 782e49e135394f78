-- Records a dead letter: a JSON entry in queue:<app>:dead scored by the time it died (ms).
local function deadLetter(deadKey, nowMs, id, reason, err, attempts, member)
  local entry = { reason = reason, at = nowMs, message = member }
  if id then entry.id = id end
  if err and err ~= '' then entry.error = err end
  if attempts then entry.attempts = attempts end
  redis.call('ZADD', deadKey, nowMs, cjson.encode(entry))
end
