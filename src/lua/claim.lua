--[[
  Claims up to N messages from an inbox, highest score first, each under a lease.
  Before claiming it
    - re-scores messages that others added with their own score formula (anything outside the
      canonical band), from the message's own priority and timestamp, so they take their place;
    - returns messages whose lease has expired (their consumer died) to the inbox.
  While claiming it refuses, without handing them out,
    - members over the size limit, members that are not a JSON object, members without a
      readable id (dead-lettered; a readable id is marked failed);
    - messages whose timestamp + timeout has passed by Redis' clock (status timeout), unless
      they break the envelope's rules: those are handed out, for the runtime to dead-letter;
    - ids already completed and ids in flight under another lease (dropped: a duplicate never
      runs twice); a second member with an id claimed earlier in the same call goes back to the
      inbox and ends the claim, to be judged once that run has ended.
  Attempts count runs that started: only the first message handed out has its attempt counted
  here (it starts at once); the consumer counts each later one when it starts it (start.lua)
  and gives the first one's back if it hands it back unstarted.
  Every member is read by the member include, the same reader as every other script.

  KEYS[1]  queue:<app>:inbox
  KEYS[2]  queue:<app>:processing      (member = message JSON, score = lease deadline ms)
  KEYS[3]  queue:<app>:dead
  KEYS[4]  activation:<app>, when ARGV[13] is not '' (single activation, activate.lua)

  ARGV[1]  message hash key prefix ("message:"); hashes are message:<id>
  ARGV[2]  how many messages to claim at most
  ARGV[3]  lease, ms
  ARGV[4]  lease token of the claimer ("<node>/<n>")
  ARGV[5]  largest message accepted, bytes
  ARGV[6]  message hash TTL, seconds
  ARGV[7]  status of a claimed message          (lifecycle: pending  --CLAIM-->)
  ARGV[8]  status of a message past its deadline (lifecycle: pending  --EXPIRE-->)
  ARGV[9]  status of a refused message           (lifecycle: pending  --REJECT-->)
  ARGV[10] status of a finished message; such ids are never handed out again
  ARGV[11] status of a message whose lease expired (lifecycle: processing --RELEASE-->)
  ARGV[12] how many foreign-scored messages / expired leases to handle in one call
  ARGV[13] the caller's node id when the actor has a single activation ('' = shared: any
           process may claim); the claim is refused, before anything is written, unless
           KEYS[4] names this node
  ARGV[14] '1' to read each claimed message's `traceparent` (its hash's trace context, written
           by send.lua / schedule.lua) and return them (`traces`); '' = not read (tracing off)

  Returns { now_ms, more, claimed, timed_out, rejected, duplicates, answers, fenced, traces };
  never an error
    more       1 when foreign scores remain to fix, or a duplicate went back: call again (after
               finishing what was claimed) before trusting the order
    claimed    flat list: member, runs before this one, id, priority (1-4), member, …
    timed_out  ids marked timeout
    rejected   how many members were dead-lettered
    duplicates how many duplicate members were dropped
    answers    refused requests (oversize) someone may be waiting for, to be answered with an
               error reply: flat list of id, sender, message_type, priority, reason, error, …
    fenced     0; or 1 when the caller is not the actor's owner (ARGV[13]): nothing was done
    traces     with ARGV[14] = '1': the traceparent of each claimed message, in claim order
               ('' = none); else empty
]]
-- @include member
-- @include score
-- @include deadletter
-- @include release

local inbox, processing, dead = KEYS[1], KEYS[2], KEYS[3]
local prefix = ARGV[1]
local want = tonumber(ARGV[2])
local leaseMs = tonumber(ARGV[3])
local token = ARGV[4]
local maxBytes = tonumber(ARGV[5])
local ttl = tonumber(ARGV[6])
local stProcessing, stTimeout, stRejected, stDone, stReleased = ARGV[7], ARGV[8], ARGV[9], ARGV[10], ARGV[11]
local batch = tonumber(ARGV[12])
-- The hash fields read for each member: the trace context too only when asked for.
local traced = ARGV[14] == '1'
local hashFields = traced and { 'status', 'attempts', 'lease', 'traceparent' } or { 'status', 'attempts', 'lease' }

local t = redis.call('TIME')
local nowUs = tonumber(t[1]) * 1000000 + tonumber(t[2])
local nowMs = math.floor(nowUs / 1000)
local nowSec = nowUs / 1000000

-- Single activation: only the owner claims (checked before any write).
if ARGV[13] ~= '' and redis.call('GET', KEYS[4]) ~= ARGV[13] then
  return { nowMs, 0, {}, {}, 0, 0, {}, 1 }
end

local rejected = 0
-- Refused requests someone may wait for: id, sender, message_type, priority, reason, error, …
local answers = {}

-- True for a decoded request: it names its sender and type, carries a numeric timeout (every
-- ask does, as does the Python peer's wait_for_reply) and is not itself a reply.
local function isRequest(msg)
  return msg and type(msg.sender) == 'string' and msg.sender ~= '' and type(msg.message_type) == 'string'
    and isFinite(msg.timeout) and (msg.reply_to == nil or msg.reply_to == cjson.null)
end

local function text(v)
  if type(v) == 'string' or type(v) == 'number' then return tostring(v) end
  return ''
end

-- Dead-letters a member that cannot be a message; a readable id is marked failed, unless its
-- hash already tells another story: a final status (the id completed, failed or timed out with
-- another member) or a run in flight under a lease, which this member must not overwrite.
local function refuse(member, id, reason, err, attempts, msg)
  deadLetter(dead, nowMs, id, reason, err, attempts, member)
  if id then
    local key = prefix .. id
    local current = redis.call('HMGET', key, 'status', 'lease')
    local final = current[1] == stDone or current[1] == stRejected or current[1] == stTimeout
    local inFlight = current[2] and current[2] ~= ''
    if not final and not inFlight then
      redis.call('HSET', key, 'status', stRejected, 'error', reason .. ': ' .. err, 'lease', '')
      redis.call('EXPIRE', key, ttl)
      if isRequest(msg) then
        for _, v in ipairs({ id, msg.sender, msg.message_type, priorityOf(msg), reason, err }) do
          answers[#answers + 1] = v
        end
      end
    end
  end
  rejected = rejected + 1
end

-- Decodes a member; dead-letters it (and returns nil) when it cannot be a message.
local function decode(member)
  if #member > maxBytes then
    -- Its id as JSON.parse reads it (decoded up to 8 times the limit; beyond, a leading id only).
    local id, msg = nil, nil
    if #member <= 8 * maxBytes then
      local decoded, _, validJson = decodeMember(member)
      msg = decoded
      if msg then id = idOf(msg) elseif validJson then id = scannedId(member) end
    else
      id = leadingId(member)
    end
    refuse(member, id, 'oversize', 'message is ' .. #member .. ' bytes, limit ' .. maxBytes, nil, msg)
    return nil
  end
  local msg, problem, validJson = decodeMember(member)
  if not msg then
    -- Its id only if JSON.parse would read one: the same id on every path.
    refuse(member, validJson and scannedId(member) or nil, 'malformed', problem)
    return nil
  end
  local id = idOf(msg)
  if not id then
    refuse(member, nil, 'malformed', 'field "id" is missing or not a valid id (non-empty UTF-8 text or a safe integer)')
    return nil
  end
  return msg, id
end

-- The id of a member in redactor's own encoding with no deadline: it starts with the id and
-- ends with a null timeout, so it needs no full decode here. Anything else returns nil.
local function quickId(member)
  if #member > maxBytes or string.sub(member, -15) ~= '"timeout":null}' then return nil end
  return leadingId(member)
end

-- 1. Foreign scores: outside [SCORE_BASE, SCORE_TOP] (NaN never reaches a sorted set).
local foreign = foreignMembers(inbox, batch)
for _, member in ipairs(foreign) do
  local msg = decode(member)
  if msg then
    redis.call('ZADD', inbox, canonicalScore(msg, nowUs), member)
  else
    redis.call('ZREM', inbox, member)
  end
end
if #foreign >= batch then
  return { nowMs, 1, {}, {}, rejected, 0, answers }
end

-- 2. Expired leases (and retry waits now due) go back to the inbox; their attempt count stays.
-- Dead holders are the sweep's business (recover.lua): they need a look at every lease.
releaseStuck(inbox, processing, prefix, '', stReleased, batch, nowUs, false, nil)

-- 3. Claim.
local claimed, timedOut, leases, seen, traces = {}, {}, {}, {}, {}
local duplicates = 0
-- A second member with an id already claimed in this call goes back to the inbox, at its score,
-- and the claim stops there: it is looked at again once this claim's run of the id has ended
-- (then it is a duplicate of a completed id, or a new attempt after a failure), so a member
-- that turns out invalid never makes a genuine one with its id vanish.
local deferred = {}
local deadline = nowMs + leaseMs
while #claimed < want * 4 do
  local asked = want - #claimed / 4
  local popped = redis.call('ZPOPMAX', inbox, asked)
  if #popped == 0 then break end
  local drained = #popped < asked * 2
  for i = 1, #popped, 2 do
    local member, score = popped[i], tonumber(popped[i + 1])
    local msg
    local id = quickId(member)
    local current
    if id then
      current = redis.call('HMGET', prefix .. id, unpack(hashFields))
      -- No metadata hash (a bare ZADD): its fields come from the message, so decode it after all.
      if not current[1] then id = nil end
    end
    if not id then
      msg, id = decode(member)
      if id then current = redis.call('HMGET', prefix .. id, unpack(hashFields)) end
    end
    if id then
      local key = prefix .. id
      local status = current[1]
      local deadlineSec = msg and deadlineOf(msg)
      if seen[id] then
        deferred[#deferred + 1] = score
        deferred[#deferred + 1] = member
      elseif status == stDone or (status == stProcessing and current[3] and current[3] ~= '') then
        duplicates = duplicates + 1
      elseif deadlineSec and deadlineSec < nowSec and not breaksEnvelope(msg) then
        redis.call('HSET', key, 'status', stTimeout, 'error', 'deadline passed before start', 'lease', '')
        redis.call('EXPIRE', key, ttl)
        timedOut[#timedOut + 1] = id
      else
        local prior = tonumber(current[2]) or 0
        if not (prior >= 0) then prior = 0 end
        local counted = #claimed == 0
        local fields = { 'status', stProcessing, 'lease', token }
        if counted then
          fields[#fields + 1] = 'attempts'
          fields[#fields + 1] = prior + 1
        end
        if not status then
          -- A bare ZADD: nobody wrote the metadata hash, so write it now, with its TTL.
          for _, f in ipairs({ 'sender', text(msg.sender), 'recipient', text(msg.recipient),
            'timestamp', text(msg.timestamp), 'type', text(msg.message_type) }) do
            fields[#fields + 1] = f
          end
        end
        redis.call('HSET', key, unpack(fields))
        if not status then redis.call('EXPIRE', key, ttl) end
        seen[id] = true
        leases[#leases + 1] = deadline
        leases[#leases + 1] = member
        claimed[#claimed + 1] = member
        claimed[#claimed + 1] = prior
        claimed[#claimed + 1] = id
        claimed[#claimed + 1] = priorityOfScore(score) or priorityOf(msg)
        if traced then traces[#traces + 1] = current[4] or '' end
      end
    end
  end
  -- Fewer than asked for: the inbox is empty, no need to ask it again.
  if drained or #deferred > 0 then break end
end
if #leases > 0 then redis.call('ZADD', processing, unpack(leases)) end
if #deferred > 0 then redis.call('ZADD', inbox, unpack(deferred)) end

return { nowMs, #deferred > 0 and 1 or 0, claimed, timedOut, rejected, duplicates, answers, 0, traces }
