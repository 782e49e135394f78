--[[
  Schedules one message for later: its message:<id> hash gets status `scheduled`, the peers'
  fields, the due time and the member itself (the exact bytes promote.lua puts in the inbox when
  it is due), and no TTL while it waits (a message due after a long outage of every process is
  still there to deliver; promote.lua sets the usual TTL when it moves it); the id goes in the
  recipient's scheduled set, scored by the due time plus a fraction for its priority, so that
  messages due in the same ms move CRITICAL first even when it takes several promote.lua calls.
  Nothing reaches the inbox, so no peer sees the message before it is due. Validates (the
  duplicate check) before its first write. All keys are in the recipient's slot.

  KEYS[1]  queue:<recipient>:scheduled
  KEYS[2]  message:<id>                  (message:{recipient}:<id> in the cluster layout)

  ARGV[1]  message hash TTL, seconds, for a duplicate that is not scheduled (its TTL starts again)
  ARGV[2]  status of a scheduled message (lifecycle: scheduled)
  ARGV[3]  space-separated statuses that make a message with the same id a duplicate (pending,
           processing, completed, scheduled): such a message is not scheduled again
  ARGV[4]  member (the message JSON)
  ARGV[5]  id
  ARGV[6]  sender
  ARGV[7]  recipient
  ARGV[8]  message_type
  ARGV[9]  timestamp (seconds: the due time)
  ARGV[10] due time, whole ms since the epoch (Redis' clock)
  ARGV[11] traceparent (the sender's W3C trace context, kept in the hash's `traceparent` field
           through promotion, for the claim to read; '' = none)
  ARGV[12] score in the scheduled set: the due time plus (4 - priority) / 8 (src/mailbox.ts
           scheduledScore)

  Returns an outcome code:
     1  scheduled
     0  duplicate: a message with this id is already scheduled, waiting, running or done (the
        hash TTL of one that is not scheduled starts again; nothing else is written)
]]
local ttl = tonumber(ARGV[1])
local current = redis.call('HGET', KEYS[2], 'status')
if current then
  for status in string.gmatch(ARGV[3], '%S+') do
    if status == current then
      if current ~= ARGV[2] then redis.call('EXPIRE', KEYS[2], ttl) end
      return 0
    end
  end
  -- Scheduled again after it failed, timed out or was cancelled: a new lifecycle.
  redis.call('HDEL', KEYS[2], 'attempts', 'lease', 'error', 'finished_at', 'traceparent')
end
redis.call('HSET', KEYS[2], 'status', ARGV[2], 'sender', ARGV[6], 'recipient', ARGV[7],
  'timestamp', ARGV[9], 'type', ARGV[8], 'due', ARGV[10], 'member', ARGV[4])
if ARGV[11] and ARGV[11] ~= '' then redis.call('HSET', KEYS[2], 'traceparent', ARGV[11]) end
redis.call('PERSIST', KEYS[2])
redis.call('ZADD', KEYS[1], ARGV[12], ARGV[5])
return 1
