-- Judges a redactor process by its heartbeat key. `judged` is '' (one server: the key is read
-- here with EXISTS) or a JSON array of the heartbeat keys the caller found dead (a cluster, where
-- heartbeat keys live in other slots and a script must not read them; a key it does not name is
-- taken for alive). Returns a function: heartbeat key -> true when that process is dead.
local function deadJudge(judged)
  if judged == '' then
    return function(heartbeatKey) return redis.call('EXISTS', heartbeatKey) == 0 end
  end
  local dead = {}
  for _, k in ipairs(cjson.decode(judged)) do dead[k] = true end
  return function(heartbeatKey) return dead[heartbeatKey] == true end
end
