--[[ pool_beat: a pool agent's idle heartbeat, and its look at the pool's leases, in one step.

An idle pool agent must know when the first lease of any sweep of its pool can lapse (it reaps
then, as an idle single-sweep agent does), without a command per sweep: this script reads each
sweep's earliest deadline inside Redis. It also says the agent is alive (its :agents score, its
record's TTL), so an idle pool agent's heartbeat is this one command.

KEYS[1]  sweepd:pool:<pool>           SET   SMEMBERS: the pool's sweeps
KEYS[2]  sweepd:pool:<pool>:agents    ZSET  ZADD the agent -> ARGV[3]
KEYS[3]  sweepd:agent:<aid>           HASH  PEXPIRE: its record lives on
ARGV[1]  key prefix                   ("sweepd:")
ARGV[2]  agent id
ARGV[3]  the agent's clock (ms): its heartbeat
ARGV[4]  the record's TTL (ms)

Reads sweepd:sweep:<sid>:held (ZRANGE 0 0) of each sweep of the pool.
Returns {now (ms, Redis clock), recorded (1, or 0: the record had expired), the earliest deadline
not yet passed (or false), the ids of the sweeps with a lapsed lease...}: the caller reaps those.
]]
local now = now_ms()
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[2])
local recorded = redis.call('PEXPIRE', KEYS[3], ARGV[4])
local earliest = false
local lapsed = {}
for _, sid in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local first = redis.call('ZRANGE', ARGV[1] .. 'sweep:' .. sid .. ':held', 0, 0, 'WITHSCORES')
  if first[2] then
    local deadline = tonumber(first[2])
    if deadline <= now then
      lapsed[#lapsed + 1] = sid
    elseif not earliest or deadline < earliest then
      earliest = deadline
    end
  end
end
return {now, recorded, earliest, unpack(lapsed)}
