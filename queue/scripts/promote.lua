--[[ promote: hold a paused run again for its next ASHA rung, in one atomic step.

The caller chose the run (queue/search/asha.py: top 1/eta of its rung, paused there); this script
checks that it is still paused at that rung (no other agent promoted it meanwhile), then holds it
as claim.lua holds a queued run: same run id, attempt + 1, a fresh token and lease.

KEYS[1]  sweepd:sweep:<sid>        HASH  read `state`: only a running sweep hands out runs
KEYS[2]  sweepd:run:<rid>          HASH  read state, rung; write state running, attempt, token, ...
KEYS[3]  sweepd:sweep:<sid>:held   ZSET  ZADD run id -> lease deadline (ms, Redis clock)
KEYS[4]  rq:job:<rid>              HASH  status started
KEYS[5]  sweepd:run:<rid>:summary  HASH  read `_step`: where the attempt's history continues
ARGV[1]  run id
ARGV[2]  the rung the caller saw it paused at
ARGV[3]  agent id
ARGV[4]  attempt token, fresh from the caller
ARGV[5]  lease length in ms

Returns {attempt, params (JSON), last step}, or false (sweep not running, or the run is no longer
paused at that rung: the caller looks again).
The attempt number is the prelude's next_attempt (an older attempt's output deleted: queue/bounds.py);
when the sweep's hash names a pool, its earliest lease goes to sweepd:pool:<pool>:held and the pool's
:gen moves (the prelude's index_held).
]]
if redis.call('HGET', KEYS[1], 'state') ~= 'running' then
  return false
end
local cur = redis.call('HMGET', KEYS[2], 'state', 'rung')
if cur[1] ~= 'paused' or cur[2] ~= ARGV[2] then
  return false
end
local now = now_ms()
local attempt = next_attempt(KEYS[2])
redis.call('HSET', KEYS[2], 'state', 'running', 'token', ARGV[4], 'agent_id', ARGV[3], 'started_at', now,
  'renewed_at', now, 'reason', 'asha-promoted')
redis.call('HDEL', KEYS[2], 'exit_code', 'ended_at', 'paused_at', 'interrupted_at')
redis.call('ZADD', KEYS[3], now + tonumber(ARGV[5]), ARGV[1])
index_held(KEYS[3], true)
redis.call('HSET', KEYS[4], 'status', 'started')
return {attempt, redis.call('HGET', KEYS[2], 'params') or '{}', redis.call('HGET', KEYS[5], '_step')}
