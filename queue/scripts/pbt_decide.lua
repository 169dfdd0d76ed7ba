--[[ pbt_decide: a PBT member's decision at an interval's step, once, and its next generation, in one
atomic step.

The holder of the member's run computed the decision (queue/search/pbt.py, a function of the
standings and the sweep's seed). This writes it only if none was written for that member and step
(however many attempts or agents race), and for an exploit creates the member's next run queued at
the front, its params explored from the parent's, its summary's `_step` the copied checkpoint's
(so its history, and SWEEPD_RESUME_STEP, continue from there). The holder then stops its own run.

KEYS[1]  sweepd:run:<rid>            HASH    the deciding run: read token, state
KEYS[2]  sweepd:sweep:<sid>:pbt      HASH    `d:<member>:<step>` (written once), `last:<member>`
KEYS[3]  sweepd:sweep:<sid>          HASH    read state; HINCRBY `pbt_runs` (runs made by exploits)
KEYS[4]  sweepd:sweep:<sid>:runs     ZSET    ZADD the new run -> creation order
KEYS[5]  sweepd:sweep:<sid>:seq      STRING  INCR: creation order
KEYS[6]  rq:queue:sweepd-<sid>       LIST    LPUSH the new run
KEYS[7]  sweepd:run:<new>            HASH    the new run
KEYS[8]  sweepd:run:<new>:summary    HASH    `_step`: where its history continues (ARGV[9], or the
                                             referenced snapshot's `step` when it has one)
KEYS[9]  rq:job:<new>                HASH    rq's job for it, status queued
KEYS[10] sweepd:sweep:<sid>:wake     LIST    a token: an idle agent takes the new run
KEYS[11] rq:queues                   SET     SADD the queue key
KEYS[12] sweepd:run:<new>:checkpoints LIST   LPUSH its first snapshot (an object-store root: a
                                             reference to the parent's latest: no object copied)
KEYS[13] sweepd:run:<parent>:checkpoints LIST read its head: the snapshot referenced
KEYS[14] sweepd:sweep:<sid>:pins     HASH    HSET <new> -> "<run> <snapshot>": the referenced one pinned
ARGV[1]  attempt token
ARGV[2]  member
ARGV[3]  step
ARGV[4]  the decision (JSON)
ARGV[5]  the new run's id ('' when the member goes on: nothing is created)
ARGV[6]  sweep id
ARGV[7]  the new run's params (JSON)
ARGV[8]  its pbt record (JSON: member, generation, parent)
ARGV[9]  its first step ('' for none)
ARGV[10] the parent, whose latest committed snapshot the new run starts from by reference ('' for
         none: a plain root, the directory is copied); read here, so retention cannot race it
ARGV[11..] rq job hash, field/value pairs

Returns 'ok', 'decided:<decision>' (one stands already, returned: nothing written), 'closed' (the sweep is not
running: the decision is written, no run made), or 'fenced' (not the holder: nothing written).
]]
if not holds(KEYS[1], ARGV[1]) then
  return 'fenced'
end
local decided = redis.call('HGET', KEYS[2], 'd:' .. ARGV[2] .. ':' .. ARGV[3])
if decided then
  return 'decided:' .. decided
end
redis.call('HSET', KEYS[2], 'd:' .. ARGV[2] .. ':' .. ARGV[3], ARGV[4])
local last = tonumber(redis.call('HGET', KEYS[2], 'last:' .. ARGV[2]) or '-1')
if tonumber(ARGV[3]) > last then
  redis.call('HSET', KEYS[2], 'last:' .. ARGV[2], ARGV[3])
end
if ARGV[5] == '' then
  return 'ok'
end
if redis.call('HGET', KEYS[3], 'state') ~= 'running' then
  return 'closed'
end
redis.call('HSET', KEYS[7], 'id', ARGV[5], 'sweep_id', ARGV[6], 'state', 'queued', 'params', ARGV[7],
  'attempt', 0, 'origin', 'pbt', 'created_at', now_ms(), 'pbt', ARGV[8])
redis.call('ZADD', KEYS[4], redis.call('INCR', KEYS[5]), ARGV[5])
redis.call('HINCRBY', KEYS[3], 'pbt_runs', 1)
if ARGV[9] ~= '' then
  redis.call('HSET', KEYS[8], '_step', ARGV[9])
end
if ARGV[10] ~= '' then
  local head = redis.call('LINDEX', KEYS[13], 0)
  if head then
    local record = cjson.decode(head)
    if not record['run'] then -- else the parent's own reference: the same objects, passed on
      record['run'] = ARGV[10]
      head = string.sub(head, 1, -2) .. ', "run": "' .. ARGV[10] .. '"}'
    end
    if record['step'] then -- where the referenced snapshot's files stood: the child continues there
      redis.call('HSET', KEYS[8], '_step', record['step'])
    end
    redis.call('LPUSH', KEYS[12], head)
    redis.call('HSET', KEYS[14], ARGV[5], record['run'] .. ' ' .. record['snapshot'])
  end
end
set_job(KEYS[9], 11)
push_run(KEYS[6], KEYS[9], ARGV[5], true)
redis.call('SADD', KEYS[11], KEYS[6])
wake(KEYS[10])
return 'ok'
