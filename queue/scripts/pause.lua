--[[ pause: park a held run at an ASHA rung, checked against the holder's token, in one atomic step.

The run leaves the held set and waits, `paused`, neither queued nor ended, until promote.lua holds it
again for the next rung (queue/search/asha.py decides which).

KEYS[1]  sweepd:run:<rid>          HASH  read token, state; write state paused, rung, paused_at, reason
KEYS[2]  sweepd:sweep:<sid>:held   ZSET  ZREM the run
KEYS[3]  rq:job:<rid>              HASH  status deferred
KEYS[4]  sweepd:sweep:<sid>:wake   LIST  a token: a promotion may be possible now; and, when nothing is
                                         held or queued, one for every agent (wake_if_done)
KEYS[5]  sweepd:sweep:<sid>:agents ZSET  ZCARD: how many tokens that is
KEYS[6]  rq:queue:sweepd-<sid>     LIST  LLEN: is anything queued
ARGV[1]  run id
ARGV[2]  attempt token of the caller
ARGV[3]  the rung's index
ARGV[4]  reason

Returns 1, or 0 when the caller no longer holds the run (nothing is written).
When the sweep's hash names a pool, its earliest lease goes to sweepd:pool:<pool>:held (ZSET, the
prelude's index_held: read sweepd:sweep:<sid> `pool` and the held set's first deadline).
]]
if not holds(KEYS[1], ARGV[2]) then
  return 0
end
redis.call('HSET', KEYS[1], 'state', 'paused', 'rung', ARGV[3], 'paused_at', now_ms(), 'reason', ARGV[4])
redis.call('HDEL', KEYS[1], 'token', 'stop_requested', 'requeue_requested', 'preempted_at')
redis.call('ZREM', KEYS[2], ARGV[1])
index_held(KEYS[2])
redis.call('HSET', KEYS[3], 'status', 'deferred')
wake(KEYS[4])
wake_if_done(KEYS[4], KEYS[5], KEYS[2], KEYS[6])
return 1
