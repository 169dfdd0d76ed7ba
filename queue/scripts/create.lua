--[[ create: make the sweep's next run from the search algorithm and hold it, in one atomic step.

The caller computed the params of search point `next_index`; this script checks that no other agent
took that point meanwhile (compare-and-set on next_index), that run_cap and metric.target still
allow a new run, then creates the run already held by the caller. A crash before or after leaves
no half-made run and no skipped point.

KEYS[1]  sweepd:sweep:<sid>        HASH    read state, next_index, target_reached, pbt_runs; HINCRBY next_index
KEYS[2]  sweepd:sweep:<sid>:runs   ZSET    ZCARD (run_cap: the runs made, less PBT's exploits), ZADD run id
KEYS[3]  sweepd:sweep:<sid>:held   ZSET    ZADD run id -> lease deadline (ms)
KEYS[4]  sweepd:run:<rid>          HASH    the new run
KEYS[5]  rq:job:<rid>              HASH    rq's job for the run (fields made by rq, status started)
KEYS[6]  sweepd:sweep:<sid>:seq    STRING  INCR: creation order
KEYS[7]  rq:queue:<sid>            LIST    optional: LLEN, a queued run goes before any new one
ARGV[1]  expected next_index
ARGV[2]  run id
ARGV[3]  params (JSON)
ARGV[4]  agent id
ARGV[5]  attempt token
ARGV[6]  lease length in ms
ARGV[7]  run_cap (0: none; pbt: its population)
ARGV[8]  sweep id
ARGV[9..] rq job hash, field/value pairs

Returns 'ok', or why not: 'paused' (sweep not running), 'queued' (with KEYS[7]: a run waits on the
queue, claim it first), 'moved:<next_index>' (another agent took the point: compute that one and
try again), 'cap', 'target', 'exists' (run id taken: pick another).
When the sweep's hash names a pool, its earliest lease goes to sweepd:pool:<pool>:held (ZSET, the
prelude's index_held: read sweepd:sweep:<sid> `pool` and the held set's first deadline).
]]
local sweep = redis.call('HMGET', KEYS[1], 'state', 'next_index', 'target_reached')
if sweep[1] ~= 'running' then
  return 'paused'
end
if KEYS[7] and redis.call('LLEN', KEYS[7]) > 0 then
  return 'queued'
end
if tonumber(sweep[2] or '0') ~= tonumber(ARGV[1]) then
  return 'moved:' .. (sweep[2] or '0')
end
if sweep[3] == '1' then
  return 'target'
end
local cap = tonumber(ARGV[7])
local made = redis.call('ZCARD', KEYS[2]) - tonumber(redis.call('HGET', KEYS[1], 'pbt_runs') or '0')
if cap > 0 and made >= cap then
  return 'cap'
end
if redis.call('EXISTS', KEYS[4]) == 1 then
  return 'exists'
end
local now = now_ms()
redis.call('HINCRBY', KEYS[1], 'next_index', 1)
redis.call('ZADD', KEYS[2], redis.call('INCR', KEYS[6]), ARGV[2])
redis.call('HSET', KEYS[4], 'id', ARGV[2], 'sweep_id', ARGV[8], 'state', 'running',
  'params', ARGV[3], 'attempt', 1, 'token', ARGV[5], 'agent_id', ARGV[4], 'index', ARGV[1],
  'origin', 'search', 'created_at', now, 'started_at', now)
redis.call('ZADD', KEYS[3], now + tonumber(ARGV[6]), ARGV[2])
index_held(KEYS[3], true)
set_job(KEYS[5], 9)
redis.call('HSET', KEYS[5], 'status', 'started')
return 'ok'
