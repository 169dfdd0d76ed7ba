--[[ preempt: mark a held run `preempting`, only for the holder of the current attempt.

KEYS[1]  sweepd:run:<rid>  HASH  read token, state; write state preempting, reason, preempted_at
ARGV[1]  attempt token
ARGV[2]  reason (signal, aws-notice, gcp-notice, azure-notice, child-marked)

Returns 1 when the run is (now or already) preempting, 0 when the caller no longer holds it.
]]
local cur = redis.call('HMGET', KEYS[1], 'token', 'state')
if cur[1] ~= ARGV[1] then
  return 0
end
if cur[2] == 'preempting' then
  return 1
end
if cur[2] ~= 'running' then
  return 0
end
local now = now_ms()
redis.call('HSET', KEYS[1], 'state', 'preempting', 'reason', ARGV[2], 'preempted_at', now)
return 1
