--[[ reap: requeue at the front every held run of a sweep whose lease has expired, in one atomic step.

Many agents reap at the same moment; each expired run is requeued exactly once, because this script
takes it out of the held set in the same step. Its holder's token is cleared, so the holder (if it
still lives) is refused at its next renew and stops its training process.

KEYS[1]  sweepd:sweep:<sid>:held   ZSET  ZRANGEBYSCORE -inf..now: expired leases; ZREM them
KEYS[2]  rq:queue:sweepd-<sid>     LIST  LPUSH each expired run id (the front)
KEYS[3]  sweepd:sweep:<sid>:wake   LIST  LPUSH: wake an idle agent
KEYS[4]  sweepd:sweep:<sid>:events LIST  LPUSH an event per run (capped at 100)
ARGV[1]  prefix of run hashes      ("sweepd:run:")
ARGV[2]  prefix of rq job hashes   ("rq:job:")

Writes each sweepd:run:<rid> (state queued, reason lease-expired, requeues + 1, token and agent_id
cleared, interrupted_at: its holder's last renewal, the last moment it was known alive) and rq:job:<rid> (status queued). Returns the requeued run ids (oldest deadline first, so
the longest-silent run ends up at the very head).
]]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local expired = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now)
for i = #expired, 1, -1 do
  local rid = expired[i]
  local rkey = ARGV[1] .. rid
  local cur = redis.call('HMGET', rkey, 'attempt', 'renewed_at', 'started_at')
  local attempt = cur[1] or '0'
  local interrupted = tonumber(cur[2]) or tonumber(cur[3]) or now
  redis.call('ZREM', KEYS[1], rid)
  redis.call('HSET', rkey, 'state', 'queued', 'reason', 'lease-expired', 'interrupted_at', interrupted)
  redis.call('HINCRBY', rkey, 'requeues', 1)
  redis.call('HDEL', rkey, 'token', 'agent_id', 'stop_requested', 'requeue_requested')
  redis.call('LPUSH', KEYS[2], rid)
  redis.call('HSET', ARGV[2] .. rid, 'status', 'queued')
  redis.call('LPUSH', KEYS[4], cjson.encode({at = now, event = 'requeued', run_id = rid,
    attempt = tonumber(attempt), reason = 'lease-expired'}))
end
if #expired > 0 then
  redis.call('LTRIM', KEYS[4], 0, 99)
  redis.call('LPUSH', KEYS[3], '1')
  redis.call('LTRIM', KEYS[3], 0, 63)
end
return expired
