--[[ prelude: the Lua the scripts share, written once.

The loader (`script_source` in queue/store.py) puts this file in front of every other script in
this folder when it registers it with Redis: each script runs as prelude + script, one EVAL, still
one atomic step. The prelude only defines local functions (it reads, writes and returns nothing by
itself); they take every key they touch as an argument, so each script's own header still names
every key and ARGV it uses.

now_ms()               the Redis clock (TIME) in ms: lease deadlines and every timestamp a script
                       writes are on it, so agents' clocks do not matter
wake(key, n)           LPUSH n tokens (default 1) on a sweep's wake list, unless 64 are waiting
                       there already: an idle agent blocked on it (BLPOP) takes one and looks at
                       the queue and the search again (idle agents look at nothing else: a token
                       is how new work reaches them; claim.lua passes one on while runs are left)
wake_all(key, agents)  a token for every agent the sweep has seen (ZCARD of sweepd:sweep:<sid>:agents,
                       at least 64), pushed whatever is waiting, the list then trimmed to that many
                       + 64: every idle agent looks again (the sweep may be complete, or running again)
                       Both also push to the sweep's pool, when its hash (the wake key without
                       `:wake`) names one: sweepd:pool:<pool>:wake, counted by sweepd:pool:<pool>:agents
                       for wake_all (queue/pools.py): a pool's idle agents wake for any of its sweeps;
                       and pool_changed
pool_changed(pool)     SET sweepd:pool:<pool>:gen (pool: sweepd:pool:<pool>) to Redis's clock in us, a
                       value never seen before, even after Redis lost writes: a pool agent whose
                       last look found no work looks again only once it changed (claim_pool.lua)
pool_of(key, suffix)   the pool of the sweep whose key is key (sweepd:sweep:<sid> .. suffix): its
                       hash's `pool` as sweepd:pool:<pool>, and the sweep id; nil when in none
index_held(held, took) after a change to a sweep's held set (held: sweepd:sweep:<sid>:held), when its
                       hash names a pool: its earliest lease deadline into sweepd:pool:<pool>:held
                       (sid -> deadline; ZREM when nothing is held), what pool_leases.lua reads
                       instead of every sweep's held set. Every script that writes a held set calls
                       it; took: the step took work (a claim, a create, a resume): pool_changed too
                       (a renewal or an end changes no sweep's work; a requeue or reap wakes)
wake_if_done(key, agents, held, queue)
                       wake_all when nothing is held and nothing queued: the sweep may just have
                       become complete, and each idle agent must see it to exit
add_event(key, event)  LPUSH the event (a table, as JSON) on a sweep's events list, newest first,
                       capped at 100: what `status` shows
push_run(queue, job, id, front)
                       put a run id on its sweep's queue, LPUSH (front: true) or RPUSH (back), and
                       mark the run's rq job `queued`
requeue_run(run)       send a run back to its queue: its hash gets state `queued`, `reason`,
                       `requeues` + 1 (and `interrupted_at` when given: claim.lua turns it into a
                       `resumed` event), then push_run. `run` is a table: key (sweepd:run:<rid>),
                       id, queue, job, reason, front; held (sweepd:sweep:<sid>:held) for a run that
                       was held: it leaves the held set and loses `token`, `agent_id`,
                       `stop_requested`, `requeue_requested` (the old holder is fenced); without it
                       (a terminal run) those fields are left as they are; interrupted_at, optional.
table_row(run, sweep_id, if_exists, if_missing)
                       the resume table's row (queue/resume.py) against a run's HMGET of `state`,
                       `sweep_id`, ...: the refusal ({'exists'}, {'missing'}, {'other-sweep', sid})
                       or nil, and whether the run exists
set_job(job, first)    HSET the rq job hash from ARGV[first..] (field/value pairs made by rq), if any
held_by(token, holder, state)
                       the fence: whether a run whose `token` field is `holder` and whose `state` is
                       `state` is held by the caller's `token` (running or preempting); every
                       holder's move asks it (checkpoint, complete, log, pause, pbt_decide,
                       pbt_standing, renew, requeue) and refuses a stale token
holds(key, token)      held_by on the run's hash (key: sweepd:run:<rid>), read here
next_attempt(key)      HINCRBY a run's `attempt` (key: sweepd:run:<rid>) and return it, deleting the
                       output of the attempt KEPT_ATTEMPTS before it (sweepd:run:<rid>:log:<n>):
                       a run keeps its newest attempts' output only (queue/bounds.py). Every attempt
                       number is made here (claim.lua, resume.lua; create.lua's is 1), one at a time,
                       so no older one is ever left. KEPT_ATTEMPTS is put in front of this file
                       from bounds.py by the loader.
came_back(up, seen, ttl, now)
                       the store's outages as a sweep's agents saw them (design.md, "After an outage"):
                       `up` (sweepd:sweep:<sid>:up) lives while any of them wrote in the last ttl ms
                       (every heartbeat and renewal pushes its TTL on); `seen` (sweepd:sweep:<sid>:seen)
                       is the last renewal or reap. Found missing, `up` is set to "<seen>:<now>": the
                       silence began after <seen> and the store is back since now ("<now>:0" when
                       there is no `seen`: nothing to come back from). Returns from, back (numbers);
                       `seen` becomes now.
spared_until(run_key, deadline, from, back, now, fallback)
                       the rule for a lease that lapsed in an outage (design.md, "After an outage"),
                       for reap.lua and resume.lua: one whose `deadline` is after `from` is held
                       until `back` + one heartbeat of its holder (its `lease_ms` / 3, read from
                       run_key, else `fallback` ms). Returns that moment while it is ahead of `now`,
                       else false (the lease can be taken)
claim_head(k, run_prefix, job_prefix, agent, token, lease_ms)
                       claim.lua's step, for claim_pool.lua too: LPOP the queue's head (k.queue) and
                       hold it (k.held: deadline now + lease_ms), a `resumed` event (k.events) when
                       it was interrupted, a token (k.wake) while runs are left; the caller checked
                       the sweep is running. Returns claim.lua's answer, or false: nothing queued
]]
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function push_tokens(key, n)
  local chunk = {}
  for _ = 1, math.min(n, 1000) do
    chunk[#chunk + 1] = '1'
  end
  local left = n
  while left > 0 do
    if left < #chunk then
      redis.call('LPUSH', key, unpack(chunk, 1, left))
    else
      redis.call('LPUSH', key, unpack(chunk))
    end
    left = left - #chunk
  end
end

local function pool_of(key, suffix)
  local prefix, sid = string.match(key, '^(.*)sweep:([^:]+)' .. suffix .. '$')
  if not prefix then
    return nil
  end
  local pool = redis.call('HGET', prefix .. 'sweep:' .. sid, 'pool')
  if not pool or pool == '' then
    return nil
  end
  return prefix .. 'pool:' .. pool, sid
end

local function wake_one_list(key, n)
  if redis.call('LLEN', key) < 64 then
    push_tokens(key, n or 1)
  end
end

local function wake_all_list(key, agents)
  local n = math.max(64, redis.call('ZCARD', agents))
  push_tokens(key, n)
  redis.call('LTRIM', key, 0, n + 63)
end

local function pool_changed(pool)
  local t = redis.call('TIME')
  redis.call('SET', pool .. ':gen', t[1] .. '.' .. t[2])
end

local function wake_pool(pool, all, n)
  if all then
    wake_all_list(pool .. ':wake', pool .. ':agents')
  else
    wake_one_list(pool .. ':wake', n)
  end
  pool_changed(pool)
end

local function wake(key, n)
  wake_one_list(key, n)
  local pool = pool_of(key, ':wake')
  if pool then
    wake_pool(pool, false, n)
  end
end

local function wake_all(key, agents)
  wake_all_list(key, agents)
  local pool = pool_of(key, ':wake')
  if pool then
    wake_pool(pool, true)
  end
end

local function index_held(held, took)
  local pool, sid = pool_of(held, ':held')
  if not pool then
    return
  end
  if took then
    pool_changed(pool)
  end
  local first = redis.call('ZRANGE', held, 0, 0, 'WITHSCORES')
  if first[2] then
    redis.call('ZADD', pool .. ':held', first[2], sid)
  else
    redis.call('ZREM', pool .. ':held', sid)
  end
end

local function wake_if_done(key, agents, held, queue)
  if redis.call('ZCARD', held) == 0 and redis.call('LLEN', queue) == 0 then
    wake_all(key, agents)
  end
end

local function add_event(key, event)
  redis.call('LPUSH', key, cjson.encode(event))
  redis.call('LTRIM', key, 0, 99)
end

local function push_run(queue, job, id, front)
  if front then
    redis.call('LPUSH', queue, id)
  else
    redis.call('RPUSH', queue, id)
  end
  redis.call('HSET', job, 'status', 'queued')
end

local function requeue_run(run)
  if run.interrupted_at then
    redis.call('HSET', run.key, 'state', 'queued', 'reason', run.reason, 'interrupted_at', run.interrupted_at)
  else
    redis.call('HSET', run.key, 'state', 'queued', 'reason', run.reason)
  end
  redis.call('HINCRBY', run.key, 'requeues', 1)
  if run.held then
    redis.call('HDEL', run.key, 'token', 'agent_id', 'stop_requested', 'requeue_requested')
    redis.call('ZREM', run.held, run.id)
  end
  push_run(run.queue, run.job, run.id, run.front)
end

local function table_row(run, sweep_id, if_exists, if_missing)
  local exists = run[1] ~= false
  if exists and if_exists == 'refuse' then
    return {'exists'}, exists
  end
  if not exists and if_missing == 'refuse' then
    return {'missing'}, exists
  end
  if exists and run[2] ~= sweep_id then
    return {'other-sweep', run[2] or ''}, exists
  end
  return nil, exists
end

local function set_job(job, first)
  if #ARGV >= first then
    redis.call('HSET', job, unpack(ARGV, first, #ARGV))
  end
end

local function held_by(token, holder, state)
  return holder == token and (state == 'running' or state == 'preempting')
end

local function holds(key, token)
  local cur = redis.call('HMGET', key, 'token', 'state')
  return held_by(token, cur[1], cur[2])
end

local function next_attempt(key)
  local attempt = redis.call('HINCRBY', key, 'attempt', 1)
  if attempt > KEPT_ATTEMPTS then
    redis.call('DEL', key .. ':log:' .. (attempt - KEPT_ATTEMPTS))
  end
  return attempt
end

local function came_back(up, seen, ttl, now)
  local mark = redis.call('GET', up)
  local last = redis.call('GET', seen)
  redis.call('SET', seen, now)
  if mark then
    redis.call('PEXPIRE', up, ttl)
    local from, back = string.match(mark, '^(%d+):(%d+)$')
    return tonumber(from), tonumber(back)
  end
  if not last then  -- nothing of this sweep ever renewed or reaped: no outage to speak of
    redis.call('SET', up, now .. ':0', 'PX', ttl)
    return now, 0
  end
  redis.call('SET', up, last .. ':' .. now, 'PX', ttl)
  return tonumber(last), now
end

local function spared_until(run_key, deadline, from, back, now, fallback)
  if deadline <= from then
    return false
  end
  local lease = tonumber(redis.call('HGET', run_key, 'lease_ms'))
  local until_ms = back + (lease and math.floor(lease / 3) or fallback)
  return now < until_ms and until_ms
end

local function claim_head(k, run_prefix, job_prefix, agent, token, lease_ms)
  local now = now_ms()
  while true do
    local rid = redis.call('LPOP', k.queue)
    if not rid then
      return false
    end
    local rkey = run_prefix .. rid
    if redis.call('HGET', rkey, 'state') == 'queued' then
      local attempt = next_attempt(rkey)
      local before = redis.call('HMGET', rkey, 'interrupted_at', 'reason')
      local interrupted = tonumber(before[1])
      redis.call('HSET', rkey, 'state', 'running', 'token', token, 'agent_id', agent,
        'started_at', now, 'renewed_at', now)
      redis.call('HDEL', rkey, 'exit_code', 'ended_at', 'stop_requested', 'requeue_requested', 'interrupted_at')
      redis.call('ZADD', k.held, now + tonumber(lease_ms), rid)
      index_held(k.held, true)
      redis.call('HSET', job_prefix .. rid, 'status', 'started')
      local recovery = -1
      if interrupted then
        recovery = now - interrupted
        add_event(k.events, {at = now, event = 'resumed', run_id = rid, attempt = attempt, agent_id = agent,
          reason = before[2] or '', after_ms = recovery})
      end
      if redis.call('LLEN', k.queue) > 0 then
        wake(k.wake)
      end
      local step = redis.call('HGET', rkey .. ':summary', '_step')
      return {rid, attempt, recovery, redis.call('HGET', rkey, 'params') or '{}', step}
    end
  end
end
