--[[ complete: record the end of an attempt, checked against the holder's token, in one atomic step.

KEYS[1]  sweepd:run:<rid>          HASH  read token, state; write state, exit_code, ended_at, reason;
                                         clear token, the requests, quick_marks
KEYS[2]  sweepd:sweep:<sid>:held   ZSET  ZREM the run: nobody holds it any more
KEYS[3]  rq:job:<rid>              HASH  status finished / failed / stopped
KEYS[4]  sweepd:sweep:<sid>:wake   LIST  when nothing is left held or queued: a token for every agent
                                         (wake_if_done), so each idle one sees whether the sweep is complete
KEYS[5]  sweepd:sweep:<sid>:agents ZSET  ZCARD: how many tokens that is
KEYS[6]  rq:queue:sweepd-<sid>     LIST  LLEN: is anything queued
ARGV[1]  run id
ARGV[2]  attempt token of the caller
ARGV[3]  terminal state (finished, failed, crashed, stopped)
ARGV[4]  exit code ('' when there is none)
ARGV[5]  reason

Returns 1, or 0 when the caller no longer holds the run (its token is stale: fenced); then nothing
is written, so a stale agent can never overwrite a newer attempt's outcome.
When the sweep's hash names a pool, its earliest lease goes to sweepd:pool:<pool>:held (ZSET, the
prelude's index_held: read sweepd:sweep:<sid> `pool` and the held set's first deadline).
]]
if not holds(KEYS[1], ARGV[2]) then
  return 0
end
local now = now_ms()
redis.call('HSET', KEYS[1], 'state', ARGV[3], 'ended_at', now, 'reason', ARGV[5])
if ARGV[4] ~= '' then
  redis.call('HSET', KEYS[1], 'exit_code', ARGV[4])
end
redis.call('HDEL', KEYS[1], 'token', 'stop_requested', 'requeue_requested', 'quick_marks')
redis.call('ZREM', KEYS[2], ARGV[1])
index_held(KEYS[2])
local rq_status = 'failed'
if ARGV[3] == 'finished' then
  rq_status = 'finished'
elseif ARGV[3] == 'stopped' then
  rq_status = 'stopped'
end
redis.call('HSET', KEYS[3], 'status', rq_status)
wake_if_done(KEYS[4], KEYS[5], KEYS[2], KEYS[6])
return 1
