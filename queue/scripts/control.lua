--[[ control: set a sweep's state (running, paused, stopped, cancelled), idempotent and atomic.

paused: agents take no new runs and wait; running runs go on. stopped: no new runs; running runs
finish; the sweep is complete once none is held. cancelled: as stopped, and queued runs end
`stopped` now; held runs are told to stop at their holder's next renew (renew.lua returns 2).
running: resume.

KEYS[1]  sweepd:sweep:<sid>        HASH  write state
KEYS[2]  rq:queue:sweepd-<sid>     LIST  cancelled: every queued run id is taken off
KEYS[3]  sweepd:sweep:<sid>:wake   LIST  a token for every agent (wake_all): each idle one looks again
KEYS[4]  sweepd:sweep:<sid>:agents ZSET  ZCARD: how many tokens that is
ARGV[1]  the new state
ARGV[2]  prefix of run hashes      ("sweepd:run:")
ARGV[3]  prefix of rq job hashes   ("rq:job:")

Returns the previous state.
]]
local previous = redis.call('HGET', KEYS[1], 'state')
redis.call('HSET', KEYS[1], 'state', ARGV[1])
if ARGV[1] == 'cancelled' then
  local queued = redis.call('LRANGE', KEYS[2], 0, -1)
  for _, rid in ipairs(queued) do
    redis.call('HSET', ARGV[2] .. rid, 'state', 'stopped', 'reason', 'sweep-cancelled')
    redis.call('HSET', ARGV[3] .. rid, 'status', 'stopped')
  end
  redis.call('DEL', KEYS[2])
end
wake_all(KEYS[3], KEYS[4])  -- running again (work for all), or stopped (maybe complete)
return previous
