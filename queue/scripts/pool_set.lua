--[[ pool_set: put a sweep in a pool, or change its priority or weight, in one atomic step.

A sweep is in at most one pool: its hash's `pool`. The search's bounds (`points`, `run_cap`) are
written beside, so that claim_pool.lua can tell from Redis alone whether the search can still
create a run. Every idle agent of the (new) pool is woken: the sweep may give it work.

KEYS[1]  sweepd:sweep:<sid>        HASH  read `pool`; write pool, priority, weight, points, run_cap
KEYS[2]  sweepd:pools              SET   SADD the pool's name
ARGV[1]  the sweep id
ARGV[2]  key prefix                ("sweepd:")
ARGV[3]  pool name ('' keeps the sweep's)
ARGV[4]  priority ('' keeps it; unset: 0)
ARGV[5]  weight ('' keeps it; unset: 1)
ARGV[6]  points: the grid's size ('' for random and bayes)
ARGV[7]  run_cap (0: none)

Writes sweepd:pool:<old pool> (SREM, when the pool changes) and sweepd:pool:<old pool>:held (ZREM),
sweepd:pool:<pool> (SADD), sweepd:pool:<pool>:held (the sweep's earliest lease: the prelude's
index_held, read from sweepd:sweep:<sid>:held), and a token per agent of the pool on
sweepd:pool:<pool>:wake (the prelude's wake_pool, counted by sweepd:pool:<pool>:agents; INCR
sweepd:pool:<pool>:gen).
Returns the sweep's pool after the step ('' : none), or false when there is no such sweep.
]]
if redis.call('EXISTS', KEYS[1]) == 0 then
  return false
end
local old = redis.call('HGET', KEYS[1], 'pool') or ''
local pool = ARGV[3]
if pool == '' then
  pool = old
end
if ARGV[4] ~= '' then
  redis.call('HSET', KEYS[1], 'priority', ARGV[4])
end
if ARGV[5] ~= '' then
  redis.call('HSET', KEYS[1], 'weight', ARGV[5])
end
redis.call('HSET', KEYS[1], 'points', ARGV[6], 'run_cap', ARGV[7])
if pool == '' then
  return ''
end
if old ~= pool then
  if old ~= '' then
    redis.call('SREM', ARGV[2] .. 'pool:' .. old, ARGV[1])
    redis.call('ZREM', ARGV[2] .. 'pool:' .. old .. ':held', ARGV[1])
  end
  redis.call('HSET', KEYS[1], 'pool', pool)
  redis.call('SADD', ARGV[2] .. 'pool:' .. pool, ARGV[1])
  redis.call('SADD', KEYS[2], pool)
end
index_held(KEYS[1] .. ':held')
wake_pool(ARGV[2] .. 'pool:' .. pool, true)
return pool
