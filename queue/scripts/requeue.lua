--[[ requeue: the holder puts its run back on the sweep's queue, same id and params, in one atomic step.

Used for a retry, a preemption, or an operator's requeue request, always by the holder: its token
must still be current. (The reaper has reap.lua; an operator has operate.lua.) A run that is already
queued is left alone, so a repeated call is harmless.

KEYS[1]  sweepd:run:<rid>          HASH  read token, state, attempt, preempted_at; write state queued,
                                         reason, requeues + 1, interrupted_at (preempted_at, else
                                         now); clear token, agent_id, stop/requeue_requested
KEYS[2]  sweepd:sweep:<sid>:held   ZSET  ZREM the run
KEYS[3]  rq:queue:sweepd-<sid>     LIST  LPUSH (front) or RPUSH (back) the run id
KEYS[4]  rq:job:<rid>              HASH  status queued
KEYS[5]  sweepd:sweep:<sid>:wake   LIST  LPUSH: wake an idle agent
KEYS[6]  rq:queues                 SET   SADD the queue key, so rq tools list it
KEYS[7]  sweepd:sweep:<sid>:events LIST  with ARGV[5] '1': LPUSH a `requeued` event (run, attempt,
                                         reason; at: now), capped at 100
ARGV[1]  run id
ARGV[2]  attempt token of the holder
ARGV[3]  reason
ARGV[4]  '1' for the front of the queue, '0' for the back
ARGV[5]  '1' to write the `requeued` event in this same step, '0' (or absent) not to
ARGV[6]  '1' when the run marked itself preempting and exited at once, its agent having seen no
         signal or notice: KEYS[1]'s `quick_marks` + 1 (the holder ends the run `failed` instead
         once they reach bounds.QUICK_MARKS); any other requeue clears `quick_marks`

Returns 1 when requeued, 0 when refused (stale token, or no such run), 2 when already queued.
When the sweep's hash names a pool, its earliest lease goes to sweepd:pool:<pool>:held (ZSET, the
prelude's index_held: read sweepd:sweep:<sid> `pool` and the held set's first deadline).
]]
local cur = redis.call('HMGET', KEYS[1], 'token', 'state', 'attempt')
if not cur[2] then
  return 0
end
if cur[2] == 'queued' then
  return 2
end
if not held_by(ARGV[2], cur[1], cur[2]) then
  return 0
end
local now = now_ms()
local interrupted = now
if cur[2] == 'preempting' then
  interrupted = tonumber(redis.call('HGET', KEYS[1], 'preempted_at')) or now
end
requeue_run({key = KEYS[1], id = ARGV[1], queue = KEYS[3], job = KEYS[4], reason = ARGV[3],
  front = ARGV[4] == '1', held = KEYS[2], interrupted_at = interrupted})
index_held(KEYS[2])
if ARGV[6] == '1' then
  redis.call('HINCRBY', KEYS[1], 'quick_marks', 1)
else
  redis.call('HDEL', KEYS[1], 'quick_marks')
end
redis.call('SADD', KEYS[6], KEYS[3])
wake(KEYS[5])
if ARGV[5] == '1' then
  add_event(KEYS[7], {at = now, event = 'requeued', run_id = ARGV[1], attempt = tonumber(cur[3]), reason = ARGV[3]})
end
return 1
