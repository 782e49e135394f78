--[[
  Announces that a redactor process serves apps: each app's presence hash says `online` and
  lists the process in a `serving:<node>` field, whose value is the process's heartbeat key. An
  app is then online while any process it lists is alive, so two processes serving one app id
  do not overwrite each other (see leave.lua).

  In 'force' mode (an actor starts, the process reconnects) every hash is written, `heartbeat`
  and `node` name this process, and `serving:*` fields of processes whose heartbeat key is dead
  are dropped. In 'repair' mode (for all of the process's apps, when a heartbeat period's EXISTS
  found one missing or a full check is due, src/presence.ts) a hash that already says `online`
  and lists this process is only read, one HMGET; a hash that is missing (FLUSHALL, DEL, a
  restart without data) or wrong (`offline`, this process not listed) is written again, and
  `heartbeat` and `node` are moved to this process when they named none or a dead one.

  Who judges whether a heartbeat key is dead (ARGV[6]):
  - '' (one Redis server): this script, with EXISTS on the key, as the keys live on the same
    server.
  - a JSON array of heartbeat keys (a Redis Cluster, where heartbeat keys live in other slots
    and a script must not read them): the caller read them before the call and names the dead
    ones; a key it does not name is taken for alive. src/presence.ts reads the hash and its
    heartbeat keys first when a call covers one app (an actor starts); for many apps at once (a
    re-announce after a reconnect, a repair) it passes '[]': no field is dropped and `heartbeat`
    is only claimed when it names no process. Readers (src/presence.ts, readStatus) judge every
    listed process by its heartbeat key, so a dead field left behind never makes an app online;
    the next leave or single-app announce drops it.

  Each hash is independent of the others: under memory pressure (a legacy script's HSET is then
  refused) the hashes before it stay written and the call fails; the next call goes on.

  KEYS[i]    status:<app i> (on a cluster, all in one slot: src/presence.ts calls per slot)

  ARGV[1]    mode: 'force' or 'repair'
  ARGV[2]    this process's node id
  ARGV[3]    this process's heartbeat key (heartbeat:<node>)
  ARGV[4]    now, Unix seconds as text (last_seen)
  ARGV[5]    value of the `ordering` field ('fifo-v1': the inbox uses canonical scores)
  ARGV[6]    '' (judge heartbeat keys here) or a JSON array of the heartbeat keys found dead
  ARGV[6+i]  app id of KEYS[i] (the `app_id` field)

  Returns the positions (1-based) of the hashes written.
]]
-- @include liveness
local force = ARGV[1] == 'force'
local node, beat, now, ordering = ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local servingField = 'serving:' .. node
local written = {}

local isDead = deadJudge(ARGV[6])

-- Drops the serving:* fields of processes whose heartbeat key is dead.
local function pruneDead(key)
  local fields = redis.call('HGETALL', key)
  for i = 1, #fields, 2 do
    local f, v = fields[i], fields[i + 1]
    if f ~= servingField and string.sub(f, 1, 8) == 'serving:' and isDead(v) then
      redis.call('HDEL', key, f)
    end
  end
end

for i, key in ipairs(KEYS) do
  local write, claimHeartbeat = force, force
  if not force then
    local current = redis.call('HMGET', key, 'status', servingField, 'heartbeat')
    if current[1] ~= 'online' or current[2] ~= beat then
      write = true
      -- `heartbeat` names one live process for readers that know no serving:* fields.
      local named = current[3]
      claimHeartbeat = current[1] ~= 'online' or not named or named == '' or isDead(named)
    end
  end
  if write then
    if force then pruneDead(key) end
    redis.call('HSET', key, 'status', 'online', 'last_seen', now, 'app_id', ARGV[6 + i],
      'ordering', ordering, servingField, beat)
    if claimHeartbeat then redis.call('HSET', key, 'heartbeat', beat, 'node', node) end
    written[#written + 1] = i
  end
end
return written
