--[[ log: append metric rows to a run's history and summary, only for the holder of the attempt.

A stale agent (its run requeued and started elsewhere) cannot write into the newer attempt's history.

KEYS[1]  sweepd:run:<rid>          HASH  read token, state
KEYS[2]  sweepd:run:<rid>:history  LIST  RPUSH the rows (JSON), LTRIM to the newest ARGV[2]
KEYS[3]  sweepd:run:<rid>:summary  HASH  HSET metric -> last value (JSON)
KEYS[4]  sweepd:run:<rid>:curve    LIST  RPUSH the sweep metric's values, one per row that has it
                                         (what hyperband judges), LTRIM to the cap
ARGV[1]  attempt token
ARGV[2]  history cap
ARGV[3]  number of rows n
ARGV[4..3+n]  the rows (JSON)
ARGV[4+n]     the sweep's metric name ('' for none)
ARGV[5+n..]   summary field/value pairs

Returns 1, or 0 when the caller no longer holds the run (nothing is written).
]]
local cur = redis.call('HMGET', KEYS[1], 'token', 'state')
if cur[1] ~= ARGV[1] or (cur[2] ~= 'running' and cur[2] ~= 'preempting') then
  return 0
end
local n = tonumber(ARGV[3])
local metric = ARGV[4 + n]
for i = 4, 3 + n do
  redis.call('RPUSH', KEYS[2], ARGV[i])
  if metric ~= '' then
    local value = cjson.decode(ARGV[i])[metric]
    if type(value) == 'number' then
      redis.call('RPUSH', KEYS[4], tostring(value))
    end
  end
end
redis.call('LTRIM', KEYS[2], -tonumber(ARGV[2]), -1)
redis.call('LTRIM', KEYS[4], 0, tonumber(ARGV[2]) - 1)
local fields = {}
for i = 5 + n, #ARGV do
  fields[#fields + 1] = ARGV[i]
end
if #fields > 0 then
  redis.call('HSET', KEYS[3], unpack(fields))
end
return 1
