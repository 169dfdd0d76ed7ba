--[[ resume: start a named run by hand (init() without an agent) under the resume table, and hold it,
in one atomic step.

The caller passes the table's row for its mode (queue/resume.py): what to do if the run exists
(resume or refuse) and if it does not (create or refuse). A run held by a live holder (its lease
still runs) is refused: two processes never run one run at once. A held run whose lease expired is
taken over (as reap.lua then claim.lua would, in one step: the old holder's token is dead). A queued
run is taken off its queue; a terminal run is requeued and claimed in the same step, so the only
way out of a terminal state is still an explicit requeue (invariant 6). A lease that lapsed while
nobody of the sweep could write is still held until its holder has had one heartbeat of the store
back, as reap.lua spares it (the prelude's spared_until): a live holder renews first.

KEYS[1]   sweepd:run:<rid>           HASH    read state, sweep_id, token; write the holder's fields
                                             (and DEL sweepd:run:<rid>:log:<attempt - KEPT_ATTEMPTS>,
                                             an older attempt's output: prelude's next_attempt)
KEYS[2]   sweepd:run:<rid>:summary   HASH    read `_step`: the last step the run logged
KEYS[3]   sweepd:sweep:<sid>         HASH    read state; created from ARGV[9] when missing (manual)
KEYS[4]   sweepd:sweep:<sid>:runs    ZSET    ZADD a new run -> creation order
KEYS[5]   sweepd:sweep:<sid>:held    ZSET    read the lease deadline; ZADD run id -> new deadline
KEYS[6]   rq:queue:sweepd-<sid>      LIST    LREM a queued run
KEYS[7]   rq:job:<rid>               HASH    rq's job (fields from ARGV[10..] for a new run), status
KEYS[8]   sweepd:sweep:<sid>:seq     STRING  INCR: creation order
KEYS[9]   sweepd:sweeps              ZSET    ZADD a sweep created here
KEYS[10]  rq:queues                  SET     SADD the queue of a sweep created here
KEYS[11]  sweepd:sweep:<sid>:up      STRING  the store's last return (came_back), read for a lapsed lease
KEYS[12]  sweepd:sweep:<sid>:seen    STRING  the last renewal or reap (came_back)
ARGV[1]   run id
ARGV[2]   sweep id
ARGV[3]   if the run exists: 'resume' or 'refuse'
ARGV[4]   if it does not: 'create' or 'refuse'
ARGV[5]   params of a new run (JSON)
ARGV[6]   holder id (shown to a refused second process)
ARGV[7]   attempt token, fresh from the caller
ARGV[8]   lease length in ms (half of it: the TTL came_back gives KEYS[11], as renew.lua's)
ARGV[9]   the sweep's hash as a JSON object of strings, to create it when missing; '' otherwise
ARGV[10..] rq job hash of a new run, field/value pairs

Returns {'created', 1, ''} or {'resumed', attempt, last `_step` as JSON or ''}, or why not (nothing
written): {'exists'}, {'missing'}, {'held', holder, ms left on its lease}, {'other-sweep', sweep id},
{'no-sweep'}, {'cancelled'}.
When the sweep's hash names a pool, its earliest lease goes to sweepd:pool:<pool>:held (ZSET, the
prelude's index_held: read sweepd:sweep:<sid> `pool` and the held set's first deadline).
]]
local now = now_ms()
local run = redis.call('HMGET', KEYS[1], 'state', 'sweep_id', 'agent_id')
local refused, exists = table_row(run, ARGV[2], ARGV[3], ARGV[4])
if refused then
  return refused
end
if redis.call('EXISTS', KEYS[3]) == 0 then
  if ARGV[9] == '' then
    return {'no-sweep'}
  end
  local fields = cjson.decode(ARGV[9])
  for k, v in pairs(fields) do
    redis.call('HSET', KEYS[3], k, v)
  end
  redis.call('ZADD', KEYS[9], tonumber(fields['created_at']) / 1000, ARGV[2])
  redis.call('SADD', KEYS[10], KEYS[6])
end
if redis.call('HGET', KEYS[3], 'state') == 'cancelled' then
  return {'cancelled'}
end
local lease_until = now + tonumber(ARGV[8])
if not exists then
  redis.call('HSET', KEYS[1], 'id', ARGV[1], 'sweep_id', ARGV[2], 'state', 'running',
    'params', ARGV[5], 'attempt', 1, 'token', ARGV[7], 'agent_id', ARGV[6], 'origin', 'manual',
    'created_at', now, 'started_at', now)
  redis.call('ZADD', KEYS[4], redis.call('INCR', KEYS[8]), ARGV[1])
  redis.call('ZADD', KEYS[5], lease_until, ARGV[1])
  index_held(KEYS[5], true)
  set_job(KEYS[7], 10)
  redis.call('HSET', KEYS[7], 'status', 'started')
  return {'created', 1, ''}
end
local state = run[1]
if state == 'running' or state == 'preempting' then
  local deadline = redis.call('ZSCORE', KEYS[5], ARGV[1])
  if deadline and tonumber(deadline) > now then
    return {'held', run[3] or '', tostring(tonumber(deadline) - now)}
  end
  if deadline then
    local from, back = came_back(KEYS[11], KEYS[12], math.floor(tonumber(ARGV[8]) / 2), now)
    local spare = spared_until(KEYS[1], tonumber(deadline), from, back, now, math.floor(tonumber(ARGV[8]) / 3))
    if spare then
      return {'held', run[3] or '', tostring(spare - now)}
    end
  end
  redis.call('HINCRBY', KEYS[1], 'requeues', 1)  -- the lapsed attempt goes back, as reap.lua would
elseif state == 'queued' then
  redis.call('LREM', KEYS[6], 0, ARGV[1])
else
  redis.call('HINCRBY', KEYS[1], 'requeues', 1)  -- a terminal run: requeued by this explicit resume
end
local attempt = next_attempt(KEYS[1])
redis.call('HSET', KEYS[1], 'state', 'running', 'token', ARGV[7], 'agent_id', ARGV[6], 'started_at', now)
redis.call('HDEL', KEYS[1], 'exit_code', 'ended_at', 'stop_requested', 'requeue_requested')
redis.call('ZADD', KEYS[5], lease_until, ARGV[1])
index_held(KEYS[5], true)
redis.call('HSET', KEYS[7], 'status', 'started')
local step = redis.call('HGET', KEYS[2], '_step')
return {'resumed', attempt, step or ''}
