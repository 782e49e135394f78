-- Returns to the inbox the messages in a processing set that nobody will finish: those whose
-- lease (or retry wait) has expired and, when checkOwners is true, those whose lease holder's
-- process is dead (its heartbeat key is gone). The caller's own process (selfNode) is never
-- judged dead: it is alive, whatever its heartbeat key says (a refused write under memory
-- pressure, a flushed key). Attempt counts are kept. Every score is computed before the first
-- write, and none can fail. Needs the member and score includes.
-- A holder is judged by its heartbeat key (beatPrefix .. node, read here) unless `judged` is a
-- table: then the caller has judged the holders (in a cluster the heartbeat keys live in other
-- slots), `judged[node]` is true for a dead one, and the holders it does not name are taken for
-- alive and listed in `unknown` for the caller to judge before the next call.
-- Returns how many went back.
local function releaseStuck(inbox, processing, prefix, beatPrefix, stReleased, limit, nowUs, checkOwners, selfNode, judged, unknown)
  local nowMs = math.floor(nowUs / 1000)
  local members
  if checkOwners then
    members = redis.call('ZRANGE', processing, 0, limit - 1, 'WITHSCORES')
  else
    members = redis.call('ZRANGEBYSCORE', processing, '-inf', nowMs, 'WITHSCORES', 'LIMIT', 0, limit)
  end
  local alive = {}
  if selfNode and selfNode ~= '' then alive[selfNode] = true end
  local gone, scored, keys = {}, {}, {}
  for i = 1, #members, 2 do
    local member, due = members[i], tonumber(members[i + 1])
    local id, msg = memberId(member)
    local key = id and prefix .. id or nil
    local back = not (due > nowMs)
    if not back and key then
      local node = string.match(redis.call('HGET', key, 'lease') or '', '^(.*)/[^/]*$')
      if node then
        if alive[node] == nil then
          if judged == nil then
            alive[node] = redis.call('EXISTS', beatPrefix .. node) == 1
          else
            alive[node] = not judged[node]
            if alive[node] then unknown[#unknown + 1] = node end
          end
        end
        back = not alive[node]
      end
    end
    if back then
      if not msg then msg = decodeMember(member) end
      gone[#gone + 1] = member
      scored[#scored + 1] = canonicalScore(msg, nowUs)
      scored[#scored + 1] = member
      if key then keys[#keys + 1] = key end
    end
  end
  if #gone == 0 then return 0 end
  redis.call('ZREM', processing, unpack(gone))
  redis.call('ZADD', inbox, unpack(scored))
  for _, key in ipairs(keys) do
    if redis.call('EXISTS', key) == 1 then redis.call('HSET', key, 'status', stReleased, 'lease', '') end
  end
  return #gone
end
