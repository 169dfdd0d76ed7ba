--[[ enqueue: put a named run on a sweep's queue under the resume table (`sweepd enqueue`), in one
atomic step.

The caller passes the table's row for its mode (queue/resume.py). A new run is created queued
(attempt 0, origin `enqueue`); a terminal run is requeued (an explicit requeue: invariant 6) with
its id, history and attempt counter, and the given params if any; a run already queued is moved to
the requested end of the queue (and given the params if any). A held run is refused: it is never
moved from under its holder (`sweepd requeue` asks the holder instead).

KEYS[1]  sweepd:run:<rid>          HASH    read state, sweep_id, agent_id; write the run
KEYS[2]  sweepd:run:<rid>:summary  HASH    read `_step`: the step a resume continues from
KEYS[3]  sweepd:sweep:<sid>        HASH    read state: a cancelled sweep takes no run
KEYS[4]  sweepd:sweep:<sid>:runs   ZSET    ZADD a new run -> creation order
KEYS[5]  rq:queue:sweepd-<sid>     LIST    LREM, then LPUSH (front) or RPUSH (back) the run id
KEYS[6]  rq:job:<rid>              HASH    rq's job (fields from ARGV[7..] for a new run), status queued
KEYS[7]  sweepd:sweep:<sid>:seq    STRING  INCR: creation order
KEYS[8]  sweepd:sweep:<sid>:wake   LIST    LPUSH: wake an idle agent
KEYS[9]  rq:queues                 SET     SADD the queue key, so rq tools list it
ARGV[1]  run id
ARGV[2]  sweep id
ARGV[3]  if the run exists: 'resume' or 'refuse'
ARGV[4]  if it does not: 'create' or 'refuse'
ARGV[5]  params (JSON); '' keeps a known run's params
ARGV[6]  '1' for the front of the queue, '0' for the back
ARGV[7..] rq job hash of a new run, field/value pairs

Returns {'created'}, {'queued', attempts so far, last `_step` or ''} (a known run requeued), or
{'moved', attempts so far, last `_step` or ''} (it was queued already); or why not (nothing written):
{'exists'}, {'missing'}, {'held', holder}, {'other-sweep', sweep id}, {'no-sweep'}, {'cancelled'}.
]]
local run = redis.call('HMGET', KEYS[1], 'state', 'sweep_id', 'agent_id', 'attempt')
local refused, exists = table_row(run, ARGV[2], ARGV[3], ARGV[4])
if refused then
  return refused
end
local sweep_state = redis.call('HGET', KEYS[3], 'state')
if not sweep_state then
  return {'no-sweep'}
end
if sweep_state == 'cancelled' then
  return {'cancelled'}
end
if exists and (run[1] == 'running' or run[1] == 'preempting') then
  return {'held', run[3] or ''}
end
local now = now_ms()
local front = ARGV[6] == '1'
local result
if not exists then
  redis.call('HSET', KEYS[1], 'id', ARGV[1], 'sweep_id', ARGV[2], 'state', 'queued', 'params', ARGV[5],
    'attempt', 0, 'origin', 'enqueue', 'created_at', now)
  redis.call('ZADD', KEYS[4], redis.call('INCR', KEYS[7]), ARGV[1])
  set_job(KEYS[6], 7)
  push_run(KEYS[5], KEYS[6], ARGV[1], front)
  result = {'created'}
else
  local step = redis.call('HGET', KEYS[2], '_step') or ''
  if run[1] == 'queued' then
    redis.call('LREM', KEYS[5], 0, ARGV[1])
    push_run(KEYS[5], KEYS[6], ARGV[1], front)
    result = {'moved', run[4] or '0', step}
  else
    requeue_run({key = KEYS[1], id = ARGV[1], queue = KEYS[5], job = KEYS[6], reason = 'enqueued', front = front})
    result = {'queued', run[4] or '0', step}
  end
  if ARGV[5] ~= '' then
    redis.call('HSET', KEYS[1], 'params', ARGV[5])
  end
end
redis.call('SADD', KEYS[9], KEYS[5])
wake(KEYS[8])
return result
