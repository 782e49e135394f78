--[[
  A redactor process stops serving apps (an actor stops, the process shuts down). Each app's
  hash drops the process's `serving:<node>` field and the fields of processes whose heartbeat
  key is dead; the app is marked `offline` only when no live process serves it any more. A hash
  that is gone (FLUSHALL, DEL) is not written: another process still serving the app writes it
  again within its next heartbeat period, and an `offline` hash written here would hide it.
  Otherwise `heartbeat` and `node` are moved to a live one when they named the leaving process
  (or a dead one). `ordering` stays: the inbox is still a redactor inbox.

  Who judges whether a heartbeat key is dead (ARGV[4]):
  - '' (one Redis server): this script, with EXISTS on the key, as the keys live on the same
    server.
  - a JSON array of heartbeat keys (a Redis Cluster, where heartbeat keys live in other slots
    and a script must not read them): src/presence.ts first reads the hashes (HGETALL) and the
    heartbeat keys they name (EXISTS), and names the dead ones here; a key it does not name is
    taken for alive. A process that starts serving the app between that read and this call is
    not named, so it counts as alive, rightly.

  KEYS[i]    status:<app i> (on a cluster, all in one slot: src/presence.ts calls per slot)

  ARGV[1]    the leaving process's node id
  ARGV[2]    its heartbeat key (heartbeat:<node>)
  ARGV[3]    now, Unix seconds as text (last_seen)
  ARGV[4]    '' (judge heartbeat keys here) or a JSON array of the heartbeat keys found dead
  ARGV[4+i]  app id of KEYS[i] (the `app_id` field)

  Returns, per hash, an outcome code (src/presence.ts, LEAVE_OUTCOME):
     1  marked offline: no live process serves the app
     0  still online: another live process serves it
     2  gone: the hash does not exist; nothing written
]]
-- @include liveness
local node, beat, now = ARGV[1], ARGV[2], ARGV[3]
local servingField = 'serving:' .. node

local isDead = deadJudge(ARGV[4])
local function isAlive(heartbeatKey) return not isDead(heartbeatKey) end

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
      if isAlive(v) then
        if not liveBeat then liveBeat, liveNode = v, string.sub(f, 9) end
      else
        redis.call('HDEL', key, f)
      end
    end
  end
  -- A process that knows no serving:* fields is still counted through `heartbeat`.
  if not liveBeat and named and named ~= '' and named ~= beat and isAlive(named) then
    liveBeat = named
  end
  if not liveBeat then
    redis.call('HSET', key, 'status', 'offline', 'last_seen', now, 'app_id', appId)
    return 1
  end
  if liveNode and (named == beat or not named or named == '' or not isAlive(named)) then
    redis.call('HSET', key, 'heartbeat', liveBeat, 'node', liveNode)
  end
  return 0
end

local results = {}
for i, key in ipairs(KEYS) do
  results[i] = leave(key, ARGV[4 + i])
end
return results
