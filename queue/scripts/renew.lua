--[[ renew: extend the lease of a held run, only for the holder of the current attempt.

KEYS[1]  sweepd:run:<rid>          HASH  read token, state
KEYS[2]  sweepd:sweep:<sid>:held   ZSET  ZADD XX run id -> new deadline (ms, Redis clock)
ARGV[1]  run id
ARGV[2]  attempt token
ARGV[3]  lease length in ms

Returns 1, or 0 when the caller no longer holds the run: it must stop its training process.
]]
local cur = redis.call('HMGET', KEYS[1], 'token', 'state')
if cur[1] ~= ARGV[2] or (cur[2] ~= 'running' and cur[2] ~= 'preempting') then
  return 0
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[2], 'XX', now + tonumber(ARGV[3]), ARGV[1])
return 1
