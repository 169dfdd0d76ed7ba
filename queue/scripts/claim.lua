--[[ claim: take the run at the head of a sweep's queue and hold it, in one atomic step.

KEYS[1]  sweepd:sweep:<sid>        HASH  read  `state`: only a running sweep hands out runs
KEYS[2]  rq:queue:sweepd-<sid>     LIST  LPOP  the next queued run id (head = next)
KEYS[3]  sweepd:sweep:<sid>:held   ZSET  ZADD  run id -> lease deadline (ms, Redis clock)
ARGV[1]  prefix of run hashes      ("sweepd:run:")
ARGV[2]  prefix of rq job hashes   ("rq:job:")
ARGV[3]  agent id
ARGV[4]  attempt token, fresh from the caller
ARGV[5]  lease length in ms

Writes sweepd:run:<rid> (state running, attempt + 1, token, agent_id, started_at, cleared
exit_code/ended_at) and rq:job:<rid> (status started).
Returns {run id, attempt}, or false when nothing is queued or the sweep is not running.
A list entry whose run is not `queued` cannot come from these scripts (an edit by hand could make
one): it is dropped, so a run is never held twice.
]]
if redis.call('HGET', KEYS[1], 'state') ~= 'running' then
  return false
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
while true do
  local rid = redis.call('LPOP', KEYS[2])
  if not rid then
    return false
  end
  local rkey = ARGV[1] .. rid
  if redis.call('HGET', rkey, 'state') == 'queued' then
    local attempt = redis.call('HINCRBY', rkey, 'attempt', 1)
    redis.call('HSET', rkey, 'state', 'running', 'token', ARGV[4], 'agent_id', ARGV[3],
      'started_at', now)
    redis.call('HDEL', rkey, 'exit_code', 'ended_at', 'stop_requested', 'requeue_requested')
    redis.call('ZADD', KEYS[3], now + tonumber(ARGV[5]), rid)
    redis.call('HSET', ARGV[2] .. rid, 'status', 'started')
    return {rid, attempt}
  end
end
