--[[ pool_leases: the pool's lapsed leases and its next deadline, read in one step: what a pool agent reaps.

A pool agent does not read every sweep's leases at each heartbeat (that is a command per sweep):
its heartbeat (Pools.pool_beat, a pipeline) only asks whether a pool agent went silent (a lease
less a heartbeat), and this script runs when one did (its runs may lapse), and every few heartbeats
in any case (a holder that is no pool agent: a sweep's own agent, a script run by hand). It reads
the pool's index of lease deadlines (each sweep's earliest, kept by every script that writes a held
set: the prelude's index_held), so its cost does not grow with the pool's sweeps. It also forgets the
pool agents silent for two leases: their runs have lapsed and been seen here.

KEYS[1]  sweepd:pool:<pool>:held      ZSET  ZRANGEBYSCORE: sweep id -> its earliest lease deadline
KEYS[2]  sweepd:pool:<pool>:agents    ZSET  ZCOUNT the silent (score < ARGV[1]); ZREMRANGEBYSCORE
                                            the long gone (score < ARGV[2])
ARGV[1]  silent before (ms, the agents' clock: the caller's now - a lease + a heartbeat)
ARGV[2]  gone before (ms: now - two leases)

Returns {now (ms, Redis clock), the earliest deadline not yet passed (or false), the number of
silent agents, the ids of the sweeps with a lapsed lease...}: the caller reaps those (reap.lua).
]]
local now = now_ms()
local lapsed = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now)
local next = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. now, '+inf', 'WITHSCORES', 'LIMIT', 0, 1)
local earliest = false
if next[2] then
  earliest = tonumber(next[2])
end
local silent = redis.call('ZCOUNT', KEYS[2], '-inf', '(' .. ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', '(' .. ARGV[2])
return {now, earliest, silent, unpack(lapsed)}
