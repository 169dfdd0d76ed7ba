--[[ reap: requeue at the front every held run of a sweep whose lease has expired, in one atomic step.

Many agents reap at the same moment; each expired run is requeued exactly once, because this script
takes it out of the held set in the same step. Its holder's token is cleared, so the holder (if it
still lives) is refused at its next renew and stops its training process.

After an outage (design.md, "After an outage"): a lease that lapsed while nobody of the sweep could
write (its deadline after the silence began, `came_back`'s from) is not reaped until its holder has
had one heartbeat (its lease_ms / 3, else ARGV[3]) of the store back: its deadline is moved to
back + that heartbeat, so a live holder renews or records its end first. Leases that lapsed with
the store up are reaped at once, as they always were.

KEYS[1]  sweepd:sweep:<sid>:held   ZSET  ZRANGEBYSCORE -inf..now: expired leases; ZREM them (or ZADD
                                         XX a spared one's new deadline)
KEYS[2]  rq:queue:sweepd-<sid>     LIST  LPUSH each expired run id (the front)
KEYS[3]  sweepd:sweep:<sid>:wake   LIST  LPUSH a token per requeued run: wake that many idle agents
KEYS[4]  sweepd:sweep:<sid>:events LIST  LPUSH an event per run (capped at 100)
KEYS[5]  sweepd:sweep:<sid>:up     STRING  the store's last return (came_back)
KEYS[6]  sweepd:sweep:<sid>:seen   STRING  the last renewal or reap (came_back)
ARGV[1]  prefix of run hashes      ("sweepd:run:")
ARGV[2]  prefix of rq job hashes   ("rq:job:")
ARGV[3]  the reaper's heartbeat in ms: a spared lease's grace when its holder never renewed
ARGV[4]  the reaper's TTL for KEYS[5] in ms (1.5 heartbeats)

Writes each sweepd:run:<rid> (state queued, reason lease-expired, requeues + 1, token, agent_id and
stop/requeue_requested cleared, interrupted_at: its holder's last renewal, the last moment it was
known alive) and rq:job:<rid> (status queued). Returns {now (ms, Redis clock), the earliest lease
deadline left (ms, or false: nothing held), how many lapsed leases were spared, the requeued run
ids...} (ids oldest deadline first, so the longest-silent run ends up at the very head): an idle
agent sleeps until that deadline, so the next lapse is reaped as it happens.
When the sweep's hash names a pool, its earliest lease goes to sweepd:pool:<pool>:held (ZSET, the
prelude's index_held: read sweepd:sweep:<sid> `pool` and the held set's first deadline).
]]
local now = now_ms()
local from, back = came_back(KEYS[5], KEYS[6], tonumber(ARGV[4]), now)
local lapsed = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'WITHSCORES')
local expired, spared = {}, 0
for i = 1, #lapsed, 2 do
  local rid = lapsed[i]
  local spare = spared_until(ARGV[1] .. rid, tonumber(lapsed[i + 1]), from, back, now, tonumber(ARGV[3]))
  if spare then
    redis.call('ZADD', KEYS[1], 'XX', spare, rid)
    spared = spared + 1
  else
    expired[#expired + 1] = rid
  end
end
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
index_held(KEYS[1])
local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return {now, first[2] or false, spared, unpack(expired)}
