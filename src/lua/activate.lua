--[[
  Single activation: the activation key of an app names the one redactor process (its node id)
  allowed to run the app's actor. The owner holds it for as long as it lives: the key has no
  lease of its own, the owner's heartbeat key (heartbeat:<node>, kept by its heartbeat thread)
  is the lease. Another process takes it over only when it found that heartbeat key gone (the
  owner died, or froze past three heartbeat periods), and says so: the key is then swapped only
  if it still names that owner (compare and set), so two processes judging the same dead owner
  cannot both win. The claim script refuses a claim by any process but the owner (claim.lua).
  The heartbeat key lives in its own slot, so the caller reads it (one server or a cluster alike).

  KEYS[1]  activation:<app>

  ARGV[1]  mode: 'acquire' or 'release'
  ARGV[2]  the caller's node id
  ARGV[3]  acquire: the owner the caller found dead (its heartbeat key gone), '' = none

  Returns { code, owner } (src/activation.ts, ACTIVATION):
    acquire   1 owned: the key names the caller (it did already, or it was free, or it named
                the dead owner given); owner = the caller
              0 held: another process owns it; owner = that node id
    release   1 released: the key named the caller and is gone
              0 not ours: the key names another process, or none; nothing written
]]
local key, mode, node = KEYS[1], ARGV[1], ARGV[2]
local owner = redis.call('GET', key)
if mode == 'release' then
  if owner ~= node then return { 0, owner or '' } end
  redis.call('DEL', key)
  return { 1, node }
end
if owner == false or owner == node or (ARGV[3] ~= '' and owner == ARGV[3]) then
  if owner ~= node then redis.call('SET', key, node) end
  return { 1, node }
end
return { 0, owner }
