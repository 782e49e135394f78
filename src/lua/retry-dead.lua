--[[
  Retries one dead letter: takes the exact entry out of the app's dead set and puts its member
  back in the app's inbox, byte for byte, in one atomic step, or does nothing at all. The member
  is scored as send.lua would score it (the canonical score when the app's inbox is a redactor
  inbox, ordering fifo-v1; the peers' priority * 1000 + timestamp otherwise, both read from the
  member itself), its hash becomes `pending` with attempts from 0 (its lease, error and
  finished_at go, its TTL starts again), and the app is notified as by send.lua. All keys are in
  the app's slot.

  Nothing is written when the entry is no longer in the dead set (retried or purged meanwhile:
  a second retry of the same dead letter never runs the message twice, and a purged one never
  comes back), nor when the message's hash says that a message with its id is waiting, running,
  scheduled or done (it was sent again since it died: a retry would run that id twice, or change
  the status under a running handler). Both are checked before the first write.

  KEYS[1]  queue:<app>:dead
  KEYS[2]  queue:<app>:inbox
  KEYS[3]  status:<app>                  (read: is it a redactor inbox?)
  KEYS[4]  message:<id>                  (message:{app}:<id> in the cluster layout)

  ARGV[1]  the dead-letter entry, exactly as stored in the dead set
  ARGV[2]  the member to put back (the entry's `message`, or its `message_hex` decoded)
  ARGV[3]  the message id (for the wake-up text)
  ARGV[4]  message hash TTL, seconds (a whole number > 0)
  ARGV[5]  status of a retried message (lifecycle initial state: pending)
  ARGV[6]  space-separated statuses that mean the id is live again (pending, processing,
           completed, scheduled): the dead letter is then left alone
  ARGV[7]  channel:<app>, the peers' wake-up channel
  ARGV[8]  the app's sharded wake-up channel ('' = the layout has none)
  ARGV[9]  sender, ARGV[10] recipient, ARGV[11] timestamp (seconds), ARGV[12] message_type:
           the hash fields, read from the member by the caller

  Returns { code, status } (src/dead-letters.ts, RETRY_OUTCOME):
     1  retried: the entry left the dead set and the member is in the inbox, pending
     0  gone: the entry is not in the dead set (retried or purged meanwhile); nothing written
    -1  live: the hash says `status` (one of ARGV[6]); nothing written
  and an error reply, before anything is written, when ARGV[4] is not a whole number > 0.
]]
-- @include member
-- @include score
-- @include enqueue

local ttl = tonumber(ARGV[4])
if not ttl or ttl <= 0 or ttl ~= math.floor(ttl) then
  return redis.error_reply('ERR retry-dead.lua: ARGV[4] (message hash TTL) must be a whole number > 0')
end
if redis.call('ZSCORE', KEYS[1], ARGV[1]) == false then return { 0, '' } end
local current = redis.call('HGET', KEYS[4], 'status')
if current then
  for status in string.gmatch(ARGV[6], '%S+') do
    if status == current then return { -1, current } end
  end
end

local member = ARGV[2]
local time = redis.call('TIME')
local nowUs = tonumber(time[1]) * 1000000 + tonumber(time[2])
local canonical, sharded = isCanonicalInbox(KEYS[3])
local msg = decodeMember(member)
local score = inboxScore(msg, canonical, nowUs)

redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('ZADD', KEYS[2], score, member)
redis.call('HSET', KEYS[4], 'status', ARGV[5], 'sender', ARGV[9], 'recipient', ARGV[10],
  'timestamp', ARGV[11], 'type', ARGV[12], 'attempts', 0)
redis.call('HDEL', KEYS[4], 'lease', 'error', 'finished_at')
redis.call('EXPIRE', KEYS[4], ttl)
notify(canonical, sharded, ARGV[7], ARGV[8], '', ARGV[3], member)
return { 1, '' }
