--[[
  A redactor process stops serving apps (an actor stops, the process shuts down). Each app's
  hash drops the process's `serving:<node>` field and the fields of processes whose heartbeat
  key is gone; the app is marked `offline` only when no live process serves it any more. A hash
  that is gone (FLUSHALL, DEL) is not written: another process still serving the app writes it
  again within its next heartbeat period, and an `offline` hash written here would hide it.
  Otherwise `heartbeat` and `node` are moved to a live one when they named the leaving process
  (or a dead one). `ordering` stays: the inbox is still a redactor inbox.

  KEYS[i]    status:<app i>

  ARGV[1]    the leaving process's node id
  ARGV[2]    its heartbeat key (heartbeat:<node>)
  ARGV[3]    now, Unix seconds as text (last_seen)
  ARGV[3+i]  app id of KEYS[i] (the `app_id` field)

  Returns, per hash, an outcome code (src/presence.ts, LEAVE_OUTCOME):
     1  marked offline: no live process serves the app
     0  still online: another live process serves it
     2  gone: the hash does not exist; nothing written
]]
local node, beat, now = ARGV[1], ARGV[2], ARGV[3]
local servingField = 'serving:' .. node

local function leave(key, appId)
  redis.call('HDEL', key, servingField)
  local fields = redis.call('HGETALL', key)
  if #fields == 0 then return 2 end
  local named, liveBeat, liveNode = nil, nil, nil
  for j = 1, #fields, 2 do
    local f, v = fields[j], fields[j + 1]
    if f == 'heartbeat' then
      named = v
    elseif string.sub(f, 1, 8) == 'serving:' then
      if redis.call('EXISTS', v) == 1 then
        if not liveBeat then liveBeat, liveNode = v, string.sub(f, 9) end
      else
        redis.call('HDEL', key, f)
      end
    end
  end
  -- A process that knows no serving:* fields is still counted through `heartbeat`.
  if not liveBeat and named and named ~= '' and named ~= beat and redis.call('EXISTS', named) == 1 then
    liveBeat = named
  end
  if not liveBeat then
    redis.call('HSET', key, 'status', 'offline', 'last_seen', now, 'app_id', appId)
    return 1
  end
  if liveNode and (named == beat or not named or named == '' or redis.call('EXISTS', named) == 0) then
    redis.call('HSET', key, 'heartbeat', liveBeat, 'node', liveNode)
  end
  return 0
end

local results = {}
for i, key in ipairs(KEYS) do
  results[i] = leave(key, ARGV[3 + i])
end
return results
