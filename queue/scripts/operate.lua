--[[ operate: an operator's `stop` or `requeue` of one run, idempotent and atomic.

A queued run is stopped at once (taken off the queue). A held run is never moved from under its
holder: the request is noted on the run, and the holder, at its next renew (renew.lua returns 2 or
3), stops the training process and records the run itself, so no second execution can start while
the first still runs. A terminal run is requeued at the front by `requeue` (its attempt counter goes
on), and left alone by `stop`.

KEYS[1]  sweepd:run:<rid>          HASH  read state; write state, reason, requeues + 1, or
                                         stop/requeue_requested
KEYS[2]  rq:queue:sweepd-<sid>     LIST  LREM (stop a queued run) or LPUSH (requeue a terminal one)
KEYS[3]  rq:job:<rid>              HASH  status
KEYS[4]  sweepd:sweep:<sid>:wake   LIST  LPUSH: wake an idle agent (a requeue); a stop that leaves
                                         nothing queued or held: a token for every agent (wake_if_done)
KEYS[5]  sweepd:sweep:<sid>:held   ZSET  ZCARD: is anything held
KEYS[6]  sweepd:sweep:<sid>:agents ZSET  ZCARD: how many tokens a wake_if_done pushes
ARGV[1]  run id
ARGV[2]  'stop' or 'requeue'

Returns 'stopped', 'requeued', 'requested' (the holder will act), 'unchanged', or 'missing'.
]]
local state = redis.call('HGET', KEYS[1], 'state')
if not state then
  return 'missing'
end
local held = state == 'running' or state == 'preempting'
if ARGV[2] == 'stop' then
  if state == 'queued' then
    redis.call('LREM', KEYS[2], 0, ARGV[1])
    redis.call('HSET', KEYS[1], 'state', 'stopped', 'reason', 'operator-stop')
    redis.call('HSET', KEYS[3], 'status', 'stopped')
    wake_if_done(KEYS[4], KEYS[6], KEYS[5], KEYS[2])
    return 'stopped'
  elseif held then
    redis.call('HSET', KEYS[1], 'stop_requested', '1')
    return 'requested'
  end
  return 'unchanged'
end
if held then
  redis.call('HSET', KEYS[1], 'requeue_requested', '1')
  return 'requested'
elseif state == 'queued' then
  return 'unchanged'
end
requeue_run({key = KEYS[1], id = ARGV[1], queue = KEYS[2], job = KEYS[3], reason = 'operator-requeue', front = true})
wake(KEYS[4])
return 'requeued'
