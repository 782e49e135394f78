-- Returns to the inbox the messages in a processing set that nobody will finish: those whose
-- lease (or retry wait) has expired and, when checkOwners is true, those whose lease holder's
-- process is dead (its heartbeat key is gone). Attempt counts are kept. Needs the score
-- include. Returns how many went back.

-- A decoded message's id as the key suffix of message:<id>: a non-empty string, or an integer.
local function idOf(msg)
  local id = msg.id
  if type(id) == 'number' and id == math.floor(id) then return string.format('%d', id) end
  if type(id) == 'string' and id ~= '' then return id end
  return nil
end

-- The id at the start of a member in redactor's own encoding ({"id":"…",…), or nil.
local function leadingId(member)
  return string.match(member, '^{"id":"([^"\\]+)",')
end

-- The id of a member, read without a full decode when it is in redactor's own encoding.
local function memberId(member)
  local id = leadingId(member)
  if id then return id, nil end
  local ok, msg = pcall(cjson.decode, member)
  if not ok or type(msg) ~= 'table' then return nil, nil end
  return idOf(msg), msg
end

local function releaseStuck(inbox, processing, prefix, beatPrefix, stReleased, limit, nowUs, checkOwners)
  local nowMs = math.floor(nowUs / 1000)
  local members
  if checkOwners then
    members = redis.call('ZRANGE', processing, 0, limit - 1, 'WITHSCORES')
  else
    members = redis.call('ZRANGEBYSCORE', processing, '-inf', nowMs, 'WITHSCORES', 'LIMIT', 0, limit)
  end
  local alive, returned = {}, 0
  for i = 1, #members, 2 do
    local member, due = members[i], tonumber(members[i + 1])
    local id, msg = memberId(member)
    local key = id and prefix .. id or nil
    local back = due <= nowMs
    if not back and key then
      local node = string.match(redis.call('HGET', key, 'lease') or '', '^(.*)/[^/]*$')
      if node then
        if alive[node] == nil then alive[node] = redis.call('EXISTS', beatPrefix .. node) == 1 end
        back = not alive[node]
      end
    end
    if back then
      if not msg then
        local ok, decoded = pcall(cjson.decode, member)
        msg = ok and type(decoded) == 'table' and decoded or {}
      end
      redis.call('ZREM', processing, member)
      redis.call('ZADD', inbox, canonicalScore(msg.priority, msg.timestamp, nowUs), member)
      if key then redis.call('HSET', key, 'status', stReleased, 'lease', '') end
      returned = returned + 1
    end
  end
  return returned
end
