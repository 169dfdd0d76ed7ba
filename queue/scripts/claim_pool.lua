--[[ claim_pool: serve a pool's sweeps in the pool's order, decided in one atomic step.

The order (docs/design.md, "Pools"): only sweeps of the highest priority that has work are served;
among them a queued run (a requeued one: preempted, crashed, reaped) goes before any new run; and
new runs go to the sweep with the fewest held runs per unit of weight. Sweeps not `running` are
skipped. A sweep has work when a run is queued or its search can still create one: no
`target_reached`, `next_index` below `points` (a grid's size) and fewer runs than `run_cap`.
A queued run is claimed here (the prelude's claim_head, as claim.lua); a new run is made by the
caller's search, so the answer names the sweep and the caller creates in it (create.lua's CAS).

KEYS[1]  sweepd:pool:<pool>        SET   SMEMBERS: the pool's sweeps
KEYS[2]  sweepd:pool:<pool>:gen    STRING GET: the pool's changes so far (the prelude's wake_pool INCRs
                                         it with every token it pushes to the pool's wake list)
ARGV[1]  key prefix                ("sweepd:")
ARGV[2]  rq queue prefix           ("rq:queue:sweepd-")
ARGV[3]  prefix of run hashes      ("sweepd:run:")
ARGV[4]  prefix of rq job hashes   ("rq:job:")
ARGV[5]  agent id
ARGV[6]  attempt token, fresh from the caller
ARGV[7]  lease length in ms
ARGV[8]  the pool's `:gen` at the caller's last look that found no work ('' : none, look)

Quiet: a look that found no work stays true until something gives a sweep of the pool work, and
every such step wakes the pool (pushes a token, INCRs `:gen`): queued runs (requeue, reap,
enqueue, operate), a sweep running again (control), a sweep joining or its bounds changed
(pool_set). So when `:gen` is still ARGV[8], nothing is read: an idle pool agent's periodic look
(for a token lost, or taken by an agent that died) costs two commands, not a few per sweep.

Reads, per sweep <sid> of the pool: sweepd:sweep:<sid> (state, priority, weight, points, run_cap,
next_index, target_reached), rq:queue:sweepd-<sid> (LLEN), sweepd:sweep:<sid>:held (ZCARD) and
:runs (ZCARD, with a run_cap). A claim writes what claim.lua writes (the run, its job, the sweep's
:held, :events and :wake).
Returns {'claim', sid, run id, attempt, recovery ms, params, last step} (claim.lua's answer after
the sweep), {'create', sid}, or {'quiet', `:gen`}: no sweep of the pool has work.
]]
local gen = redis.call('GET', KEYS[2]) or '0'
if gen == ARGV[8] then
  return {'quiet', gen}
end
local rows, top = {}, nil
for _, sid in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local skey = ARGV[1] .. 'sweep:' .. sid
  local f = redis.call('HMGET', skey, 'state', 'priority', 'weight', 'points', 'run_cap', 'next_index', 'target_reached')
  if f[1] == 'running' then
    local queue = ARGV[2] .. sid
    local queued = redis.call('LLEN', queue)
    local creatable = f[7] ~= '1'
    local points = tonumber(f[4] or '')
    if creatable and points and (tonumber(f[6] or '0') or 0) >= points then
      creatable = false
    end
    local cap = tonumber(f[5] or '0') or 0
    if creatable and cap > 0 and redis.call('ZCARD', skey .. ':runs') >= cap then
      creatable = false
    end
    if queued > 0 or creatable then
      local priority = tonumber(f[2] or '0') or 0
      local weight = tonumber(f[3] or '1') or 1
      rows[#rows + 1] = {sid = sid, key = skey, queue = queue, queued = queued, creatable = creatable,
        priority = priority, weight = weight, share = redis.call('ZCARD', skey .. ':held') / weight}
      if top == nil or priority > top then
        top = priority
      end
    end
  end
end
local served = {}
for _, row in ipairs(rows) do
  if row.priority == top then
    served[#served + 1] = row
  end
end
table.sort(served, function(a, b)
  if a.share ~= b.share then
    return a.share < b.share
  end
  if a.weight ~= b.weight then
    return a.weight > b.weight
  end
  return a.sid < b.sid
end)
for _, row in ipairs(served) do
  if row.queued > 0 then
    local got = claim_head({queue = row.queue, held = row.key .. ':held', events = row.key .. ':events',
      wake = row.key .. ':wake'}, ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7])
    if got then
      return {'claim', row.sid, got[1], got[2], got[3], got[4], got[5]}
    end
  end
end
for _, row in ipairs(served) do
  if row.creatable then
    return {'create', row.sid}
  end
end
return {'quiet', gen}
