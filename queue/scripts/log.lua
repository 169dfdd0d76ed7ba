--[[ log: append metric rows to a run's history and summary, only for the holder of the attempt, and
note on the sweep when a row reaches the metric's target, in one atomic step.

A stale agent (its run requeued and started elsewhere) cannot write into the newer attempt's history,
nor mark the sweep's target reached: a refused log writes nothing.

The bounds (queue/bounds.py) hold here too, whoever calls: a row longer than the row bound, or that
cjson cannot read, is not stored; a summary field past the name or row bound, or a new name once
the summary has its most names, is not stored; the history keeps its newest rows within both its
row and byte bounds. Nothing is ever unpacked: the count of fields is the caller's. What is not
stored is counted in the run's `cut`, with the agent's own count (ARGV[7]).

KEYS[1]  sweepd:run:<rid>          HASH  read token, state; HINCRBY cut, history_bytes (the bytes
                                         of the rows its history holds)
KEYS[2]  sweepd:run:<rid>:history  LIST  RPUSH the rows (JSON), LPOP the oldest past the bounds
KEYS[3]  sweepd:run:<rid>:summary  HASH  HSET metric -> last value (JSON)
KEYS[4]  sweepd:run:<rid>:curve    LIST  RPUSH the sweep metric's finite values, one per row that
                                         has one (what hyperband judges), LTRIM to the row bound
KEYS[5]  sweepd:sweep:<sid>        HASH  HSET target_reached 1 when a row's metric value reaches the
                                         target (create.lua then makes no new run); read `pool`:
                                         then SET sweepd:pool:<pool>:gen (the prelude's pool_changed)
ARGV[1]  attempt token
ARGV[2]  history bound, rows
ARGV[3]  history bound, bytes
ARGV[4]  row bound, bytes (a summary value's too)
ARGV[5]  metric name bound, bytes
ARGV[6]  most metric names a summary holds
ARGV[7]  what the caller cut already (added to `cut`)
ARGV[8]  number of rows n
ARGV[9..8+n]  the rows (JSON)
ARGV[9+n]     the sweep's metric name ('' for none)
ARGV[10+n]    the metric's goal ('minimize' or 'maximize'; '' for none)
ARGV[11+n]    the metric's target ('' for none)
ARGV[12+n..]  summary field/value pairs

Reached is space.Metric.reached: value <= target when minimizing, >= when maximizing. The values
judged are a row's finite numbers and booleans (as 1 and 0), as Python's isinstance(v, (int, float))
took them when the agent made this check; the curve takes finite numbers only.
Returns 1, or 0 when the caller no longer holds the run (nothing is written).
]]
if not holds(KEYS[1], ARGV[1]) then
  return 0
end
local max_rows, max_bytes = tonumber(ARGV[2]), tonumber(ARGV[3])
local row_bytes, name_bytes, max_fields = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local cut = tonumber(ARGV[7]) or 0
local n = tonumber(ARGV[8])
local metric, goal, target = ARGV[9 + n], ARGV[10 + n], tonumber(ARGV[11 + n])
local reached = false
local added = 0
for i = 9, 8 + n do
  local row = ARGV[i]
  local ok, decoded = true, nil
  if #row > row_bytes then
    ok = false
  elseif metric ~= '' then
    ok, decoded = pcall(cjson.decode, row)
    ok = ok and type(decoded) == 'table'
  end
  if not ok then
    cut = cut + 1
  else
    redis.call('RPUSH', KEYS[2], row)
    added = added + #row
    if metric ~= '' then
      local value = decoded[metric]
      if type(value) == 'boolean' then
        value = value and 1 or 0
      elseif type(value) ~= 'number' or value ~= value or value == math.huge or value == -math.huge then
        value = nil
      else
        redis.call('RPUSH', KEYS[4], tostring(value))
      end
      if target and value then
        if goal == 'minimize' then
          reached = reached or value <= target
        else
          reached = reached or value >= target
        end
      end
    end
  end
end
if added > 0 then
  local bytes = redis.call('HINCRBY', KEYS[1], 'history_bytes', added)
  local length = redis.call('LLEN', KEYS[2])
  while length > 1 and (length > max_rows or bytes > max_bytes) do
    local old = redis.call('LPOP', KEYS[2])
    bytes, length = bytes - #old, length - 1
  end
  redis.call('HSET', KEYS[1], 'history_bytes', math.max(bytes, 0))
  redis.call('LTRIM', KEYS[4], 0, max_rows - 1)
end
local names = nil
for i = 12 + n, #ARGV - 1, 2 do
  local name, value = ARGV[i], ARGV[i + 1]
  if #name > name_bytes or #value > row_bytes then
    cut = cut + 1
  else
    names = names or redis.call('HLEN', KEYS[3])
    if names < max_fields or redis.call('HEXISTS', KEYS[3], name) == 1 then
      names = names + redis.call('HSET', KEYS[3], name, value)
    else
      cut = cut + 1
    end
  end
end
if cut > 0 then
  redis.call('HINCRBY', KEYS[1], 'cut', cut)
end
if reached then
  redis.call('HSET', KEYS[5], 'target_reached', '1')
  local pool = pool_of(KEYS[5], '')
  if pool then
    pool_changed(pool)
  end
end
return 1
