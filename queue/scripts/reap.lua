--[[ reap: requeue at the front every held run of a sweep whose lease has expired, in one atomic step.

Many agents reap at the same moment; each expired run is requeued exactly once, because this script
takes it out of the held set in the same step. Its holder's token is cleared, so the holder (if it
still lives) is refused at its next renew and stops its training process.

KEYS[1]  sweepd:sweep:<sid>:held   ZSET  ZRANGEBYSCORE -inf..now: expired leases; ZREM them
KEYS[2]  rq:queue:sweepd-<sid>     LIST  LPUSH each expired run id (the front)
KEYS[3]  sweepd:sweep:<sid>:wake   LIST  LPUSH a token per requeued run: wake that many idle agents
KEYS[4]  sweepd:sweep:<sid>:events LIST  LPUSH an event per run (capped at 100)
ARGV[1]  prefix of run hashes      ("sweepd:run:")
ARGV[2]  prefix of rq job hashes   ("rq:job:")

Writes each sweepd:run:<rid> (state queued, reason lease-expired, requeues + 1, token, agent_id and
stop/requeue_requested cleared, interrupted_at: its holder's last renewal, the last moment it was
known alive) and rq:job:<rid> (status queued). Returns {now (ms, Redis clock), the earliest lease
deadline left (ms, or false: nothing held), the requeued run ids...} (ids oldest deadline first, so
the longest-silent run ends up at the very head): an idle agent sleeps until that deadline, so the
next lapse is reaped as it happens.
]]
local now = now_ms()
local expired = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now)
for i = #expired, 1, -1 do
  local rid = expired[i]
  local rkey = ARGV[1] .. rid
  local cur = redis.call('HMGET', rkey, 'attempt', 'renewed_at', 'started_at')
  local attempt = cur[1] or '0'
  local interrupted = tonumber(cur[2]) or tonumber(cur[3]) or now
  requeue_run({key = rkey, id = rid, queue = KEYS[2], job = ARGV[2] .. rid, reason = 'lease-expired',
    front = true, held = KEYS[1], interrupted_at = interrupted})
  add_event(KEYS[4], {at = now, event = 'requeued', run_id = rid, attempt = tonumber(attempt),
    reason = 'lease-expired'})
end
if #expired > 0 then
  wake(KEYS[3], #expired)
end
local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return {now, first[2] or false, unpack(expired)}
