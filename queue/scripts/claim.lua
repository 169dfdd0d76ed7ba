--[[ claim: take the run at the head of a sweep's queue and hold it, in one atomic step.

KEYS[1]  sweepd:sweep:<sid>        HASH  read  `state`: only a running sweep hands out runs
KEYS[2]  rq:queue:sweepd-<sid>     LIST  LPOP  the next queued run id (head = next)
KEYS[3]  sweepd:sweep:<sid>:held   ZSET  ZADD  run id -> lease deadline (ms, Redis clock)
KEYS[4]  sweepd:sweep:<sid>:events LIST  LPUSH a `resumed` event (with the interruption's reason and
                                         `after_ms`) when the run was interrupted (capped at 100)
KEYS[5]  sweepd:sweep:<sid>:wake   LIST  LPUSH a token when runs are still queued after this one:
                                         the next idle agent takes the next (a chain, so no run
                                         waits for want of a token)
ARGV[1]  prefix of run hashes      ("sweepd:run:")
ARGV[2]  prefix of rq job hashes   ("rq:job:")
ARGV[3]  agent id
ARGV[4]  attempt token, fresh from the caller
ARGV[5]  lease length in ms

Writes sweepd:run:<rid> (state running, attempt + 1, token, agent_id, started_at, cleared
exit_code/ended_at/interrupted_at) and rq:job:<rid> (status started); DELs
sweepd:run:<rid>:log:<attempt - KEPT_ATTEMPTS>, an older attempt's output (prelude's next_attempt).
Returns {run id, attempt, recovery ms, params (JSON), last step}, or false when nothing is queued or
the sweep is not running. The last step is the summary's `_step` (sweepd:run:<rid>:summary, false if
the run never logged): the attempt's history continues from it. Returning params and step here
saves the agent a round trip between a run's requeue and its start.
Recovery is the time since the run was interrupted (`interrupted_at`, written by requeue.lua and
reap.lua), -1 when it was not (a new run, an operator's or enqueue's requeue of an ended one).
The claim itself is the prelude's claim_head (claim_pool.lua claims with it too).
A list entry whose run is not `queued` cannot come from these scripts (an edit by hand could make
one): it is dropped, so a run is never held twice.
When the sweep's hash names a pool, its earliest lease goes to sweepd:pool:<pool>:held (ZSET, the
prelude's index_held: read sweepd:sweep:<sid> `pool` and the held set's first deadline).
]]
if redis.call('HGET', KEYS[1], 'state') ~= 'running' then
  return false
end
return claim_head({queue = KEYS[2], held = KEYS[3], events = KEYS[4], wake = KEYS[5]},
  ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5])
