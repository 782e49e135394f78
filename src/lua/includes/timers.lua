-- Tells every incarnation of an actor that its set of due timers changed (a timer started,
-- replaced or cancelled), so that each re-reads the head of its due set and re-arms: with
-- activation "shared" a timer started in one process is then fired by the others too. Sent on
-- the actor's wake-up path (src/wakeups.ts): SPUBLISH on its sharded channel when the actor
-- listens there (`wake sharded` in `status:<app>`, cluster layout), else PUBLISH on
-- `channel:<app>`. The text is `hint`, never `new_message:<id>`: a wake-up path that reads it
-- re-arms the actor's timers without claiming; a peer ignores it (docs/PROTOCOL.md, section 12).
local function hintTimersChanged(statusKey, channel, wakeChannel, hint)
  if wakeChannel ~= '' and redis.call('HGET', statusKey, 'wake') == 'sharded' then
    redis.call('SPUBLISH', wakeChannel, hint)
  else
    redis.call('PUBLISH', channel, hint)
  end
end
