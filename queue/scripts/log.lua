--[[ log: append metric rows to a run's history and summary, only for the holder of the attempt, and
note on the sweep when a row reaches the metric's target, in one atomic step.

A stale agent (its run requeued and started elsewhere) cannot write into the newer attempt's history,
nor mark the sweep's target reached: a refused log writes nothing.

KEYS[1]  sweepd:run:<rid>          HASH  read token, state
KEYS[2]  sweepd:run:<rid>:history  LIST  RPUSH the rows (JSON), LTRIM to the newest ARGV[2]
KEYS[3]  sweepd:run:<rid>:summary  HASH  HSET metric -> last value (JSON)
KEYS[4]  sweepd:run:<rid>:curve    LIST  RPUSH the sweep metric's values, one per row that has it
                                         (what hyperband judges), LTRIM to the cap
KEYS[5]  sweepd:sweep:<sid>        HASH  HSET target_reached 1 when a row's metric value reaches the
                                         target (create.lua then makes no new run)
ARGV[1]  attempt token
ARGV[2]  history cap
ARGV[3]  number of rows n
ARGV[4..3+n]  the rows (JSON)
ARGV[4+n]     the sweep's metric name ('' for none)
ARGV[5+n]     the metric's goal ('minimize' or 'maximize'; '' for none)
ARGV[6+n]     the metric's target ('' for none)
ARGV[7+n..]   summary field/value pairs

Reached is space.Metric.reached: value <= target when minimizing, >= when maximizing. The values
judged are a row's numbers and booleans (as 1 and 0), as Python's isinstance(v, (int, float)) took
them when the agent made this check; the curve takes numbers only.
Returns 1, or 0 when the caller no longer holds the run (nothing is written).
]]
local cur = redis.call('HMGET', KEYS[1], 'token', 'state')
if cur[1] ~= ARGV[1] or (cur[2] ~= 'running' and cur[2] ~= 'preempting') then
  return 0
end
local n = tonumber(ARGV[3])
local metric, goal, target = ARGV[4 + n], ARGV[5 + n], tonumber(ARGV[6 + n])
local reached = false
for i = 4, 3 + n do
  redis.call('RPUSH', KEYS[2], ARGV[i])
  if metric ~= '' then
    local value = cjson.decode(ARGV[i])[metric]
    if type(value) == 'number' then
      redis.call('RPUSH', KEYS[4], tostring(value))
    elseif type(value) == 'boolean' then
      value = value and 1 or 0
    end
    if target and type(value) == 'number' then
      if goal == 'minimize' then
        reached = reached or value <= target
      else
        reached = reached or value >= target
      end
    end
  end
end
redis.call('LTRIM', KEYS[2], -tonumber(ARGV[2]), -1)
redis.call('LTRIM', KEYS[4], 0, tonumber(ARGV[2]) - 1)
local fields = {}
for i = 7 + n, #ARGV do
  fields[#fields + 1] = ARGV[i]
end
if #fields > 0 then
  redis.call('HSET', KEYS[3], unpack(fields))
end
if reached then
  redis.call('HSET', KEYS[5], 'target_reached', '1')
end
return 1
