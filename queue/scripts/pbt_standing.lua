--[[ pbt_standing: note a PBT member's value at an interval's step and read the standings, fenced.

KEYS[1]  sweepd:run:<rid>          HASH  read token, state
KEYS[2]  sweepd:sweep:<sid>:pbt    HASH  `s:<step>:<member>` -> {value, run} (JSON); the first value
                                         a member gives at a step stands (a resumed attempt cannot
                                         rewrite it)
ARGV[1]  attempt token
ARGV[2]  member
ARGV[3]  step
ARGV[4]  {value, run} (JSON)
ARGV[5]  the population (members 0 .. population - 1)

Returns every member's standing at that step (false for one that has not reached it), or false
when the caller no longer holds the run (nothing written).
]]
if not holds(KEYS[1], ARGV[1]) then
  return false
end
local prefix = 's:' .. ARGV[3] .. ':'
redis.call('HSETNX', KEYS[2], prefix .. ARGV[2], ARGV[4])
local fields = {}
for m = 0, tonumber(ARGV[5]) - 1 do
  fields[#fields + 1] = prefix .. m
end
return redis.call('HMGET', KEYS[2], unpack(fields))
