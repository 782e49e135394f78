--[[
  Cancels a scheduled message that is not due yet: takes its id out of the recipient's scheduled
  set and marks its hash `cancelled` (its `member` and `due` fields go; the hash keeps the usual
  TTL, so the id is known as cancelled). Validates (is it still scheduled?) before its first
  write. All keys are in the recipient's slot.

  KEYS[1]  queue:<recipient>:scheduled
  KEYS[2]  message:<id>                  (message:{recipient}:<id> in the cluster layout)

  ARGV[1]  id
  ARGV[2]  status of a cancelled message (lifecycle: scheduled --CANCEL--> cancelled)
  ARGV[3]  message hash TTL, seconds

  Returns an outcome code:
     1  cancelled
     0  not found: no such message (never sent, or its hash expired)
    -1  not scheduled any more: already delivered (due and moved to the inbox), or cancelled
]]
if redis.call('ZSCORE', KEYS[1], ARGV[1]) == false then
  if redis.call('EXISTS', KEYS[2]) == 1 then return -1 end
  return 0
end
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('HSET', KEYS[2], 'status', ARGV[2])
redis.call('HDEL', KEYS[2], 'member', 'due')
redis.call('EXPIRE', KEYS[2], tonumber(ARGV[3]))
return 1
