--[[ pool_leases: every sweep of a pool's earliest lease, read in one step: what a pool agent reaps.

A pool agent does not read every sweep's leases at each heartbeat (that is a command per sweep):
its heartbeat (Pools.pool_beat, a pipeline) only asks whether a pool agent went silent (a lease
less a heartbeat), and this script runs when one did (its runs may lapse), and every few heartbeats in any case (a
holder that is no pool agent: a sweep's own agent, a script run by hand). It also forgets the pool
agents silent for two leases: their runs have lapsed and been seen here.

KEYS[1]  sweepd:pool:<pool>           SET   SMEMBERS: the pool's sweeps
KEYS[2]  sweepd:pool:<pool>:agents    ZSET  ZCOUNT the silent (score < ARGV[2]); ZREMRANGEBYSCORE
                                            the long gone (score < ARGV[3])
ARGV[1]  key prefix                   ("sweepd:")
ARGV[2]  silent before (ms, the agents' clock: the caller's now - a lease + a heartbeat)
ARGV[3]  gone before (ms: now - two leases)

Reads sweepd:sweep:<sid>:held (ZRANGE 0 0) of each sweep of the pool.
Returns {now (ms, Redis clock), the earliest deadline not yet passed (or false), the number of
silent agents, the ids of the sweeps with a lapsed lease...}: the caller reaps those (reap.lua).
]]
local now = now_ms()
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
local silent = redis.call('ZCOUNT', KEYS[2], '-inf', '(' .. ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', '(' .. ARGV[3])
return {now, earliest, silent, unpack(lapsed)}
