--[[
  Keeps a process's heartbeat key alive: its value is the beat's time, and it expires after
  three heartbeat periods unless beaten again. Never refused over maxmemory: Redis refuses a
  script whose first write could grow memory, but lets the rest of a script through once it has
  written, and PEXPIRE (the first write here) is never refused. So a live process's heartbeat is
  never lost to memory pressure, not even when Redis lost the key (a restart, a flush) while
  it is over maxmemory: the key is a few bytes.

  KEYS[1]  heartbeat:<node>

  ARGV[1]  value: the beat's time, Unix seconds by Redis' clock, as text
  ARGV[2]  lifetime, ms

  Returns 1 when the key was refreshed, 2 when it was gone and was created again (Redis lost
  data: a restart without persistence, FLUSHALL, a DEL); never an error.
]]
local existed = redis.call('PEXPIRE', KEYS[1], ARGV[2])
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
if existed == 1 then return 1 end
return 2
