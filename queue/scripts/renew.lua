--[[ renew: extend the lease of a held run, only for the holder of the current attempt, and tell the
holder whether an operator asked for the run to stop or to be requeued.

KEYS[1]  sweepd:run:<rid>          HASH  read token, state, stop_requested, requeue_requested;
                                         write renewed_at (ms): the holder's last sign of life, and
                                         lease_ms (a third of it is the holder's heartbeat: reap.lua)
KEYS[2]  sweepd:sweep:<sid>:held   ZSET  ZADD XX run id -> new deadline (ms, Redis clock)
KEYS[3]  sweepd:sweep:<sid>        HASH  read state: a cancelled sweep stops its runs
KEYS[4]  sweepd:sweep:<sid>:up     STRING  a renewal says the store is up (came_back: TTL half a lease)
KEYS[5]  sweepd:sweep:<sid>:seen   STRING  the last renewal or reap (came_back)
ARGV[1]  run id
ARGV[2]  attempt token
ARGV[3]  lease length in ms

Returns 1 (renewed), 0 (the caller no longer holds the run: it must stop its training process at
once), 2 (renewed; an operator stopped the run: it ends `stopped`), 3 (renewed; requeue the run at
the front), 4 (renewed; the sweep was cancelled: the run ends `stopped`), 5 (the run's hash is gone:
Redis lost its data, or someone deleted the keys; the caller must stop at once, as for 0).
When the sweep's hash names a pool, its earliest lease goes to sweepd:pool:<pool>:held (ZSET, the
prelude's index_held: read sweepd:sweep:<sid> `pool` and the held set's first deadline).
]]
local cur = redis.call('HMGET', KEYS[1], 'token', 'state', 'stop_requested', 'requeue_requested')
if cur[2] == false then
  return 5  -- every run hash has a state: no state, no hash
end
if not held_by(ARGV[2], cur[1], cur[2]) then
  return 0
end
if redis.call('ZSCORE', KEYS[2], ARGV[1]) == false then
  return 0
end
local now = now_ms()
came_back(KEYS[4], KEYS[5], math.floor(tonumber(ARGV[3]) / 2), now)
redis.call('ZADD', KEYS[2], 'XX', now + tonumber(ARGV[3]), ARGV[1])
index_held(KEYS[2])
redis.call('HSET', KEYS[1], 'renewed_at', now, 'lease_ms', ARGV[3])
if redis.call('HGET', KEYS[3], 'state') == 'cancelled' then
  return 4
end
if cur[3] == '1' then
  return 2
end
if cur[4] == '1' then
  return 3
end
return 1
