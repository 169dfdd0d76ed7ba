--[[ requeue: the holder puts its run back on the sweep's queue, same id and params, in one atomic step.

Used for a retry, a preemption, or an operator's requeue request, always by the holder: its token
must still be current. (The reaper has reap.lua; an operator has operate.lua.) A run that is already
queued is left alone, so a repeated call is harmless.

KEYS[1]  sweepd:run:<rid>          HASH  read token, state, preempted_at; write state queued, reason,
                                         requeues + 1, interrupted_at (preempted_at, else now)
KEYS[2]  sweepd:sweep:<sid>:held   ZSET  ZREM the run
KEYS[3]  rq:queue:sweepd-<sid>     LIST  LPUSH (front) or RPUSH (back) the run id
KEYS[4]  rq:job:<rid>              HASH  status queued
KEYS[5]  sweepd:sweep:<sid>:wake   LIST  LPUSH: wake an idle agent
KEYS[6]  rq:queues                 SET   SADD the queue key, so rq tools list it
ARGV[1]  run id
ARGV[2]  attempt token of the holder
ARGV[3]  reason
ARGV[4]  '1' for the front of the queue, '0' for the back

Returns 1 when requeued, 0 when refused (stale token, or no such run), 2 when already queued.
]]
local cur = redis.call('HMGET', KEYS[1], 'token', 'state')
if not cur[2] then
  return 0
end
if cur[2] == 'queued' then
  return 2
end
if cur[1] ~= ARGV[2] or (cur[2] ~= 'running' and cur[2] ~= 'preempting') then
  return 0
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local interrupted = now
if cur[2] == 'preempting' then
  interrupted = tonumber(redis.call('HGET', KEYS[1], 'preempted_at')) or now
end
redis.call('HSET', KEYS[1], 'state', 'queued', 'reason', ARGV[3], 'interrupted_at', interrupted)
redis.call('HINCRBY', KEYS[1], 'requeues', 1)
redis.call('HDEL', KEYS[1], 'token', 'agent_id', 'stop_requested', 'requeue_requested')
redis.call('ZREM', KEYS[2], ARGV[1])
if ARGV[4] == '1' then
  redis.call('LPUSH', KEYS[3], ARGV[1])
else
  redis.call('RPUSH', KEYS[3], ARGV[1])
end
redis.call('SADD', KEYS[6], KEYS[3])
redis.call('HSET', KEYS[4], 'status', 'queued')
redis.call('LPUSH', KEYS[5], '1')
redis.call('LTRIM', KEYS[5], 0, 63)
return 1
