--[[ create_sweep: store a new sweep and list it, in one atomic step (a script, not MULTI/EXEC, so
that behind Sentinel it waits for a replica like every other move: replication.py).

KEYS[1]  sweepd:sweep:<sid>   HASH  write every field of ARGV[3..] (the sweep's record)
KEYS[2]  sweepd:sweeps        ZSET  ZADD sid, scored by its creation time (seconds)
KEYS[3]  rq:queues            SET   SADD the sweep's rq queue name
ARGV[1]  the sweep id
ARGV[2]  the sweep's rq queue name ("rq:queue:sweepd-<sid>")
ARGV[3..] field, value, field, value, ... of the sweep's hash (created_at among them, in ms)

Returns 1, or 0 (nothing written) when a sweep of that id exists already.
]]
if redis.call('EXISTS', KEYS[1]) == 1 then
  return 0
end
local fields = {}
local created = 0
for i = 3, #ARGV, 2 do
  fields[#fields + 1] = ARGV[i]
  fields[#fields + 1] = ARGV[i + 1]
  if ARGV[i] == 'created_at' then
    created = tonumber(ARGV[i + 1])
  end
end
redis.call('HSET', KEYS[1], unpack(fields))
redis.call('ZADD', KEYS[2], created / 1000, ARGV[1])
redis.call('SADD', KEYS[3], ARGV[2])
return 1
