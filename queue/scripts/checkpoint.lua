--[[ checkpoint: make an uploaded snapshot the run's latest, only for the holder of the current
attempt, and trim the run's snapshots to those kept, in one atomic step.

The snapshot's files and its manifest are in the object store already (written whole before this
is called); this step is the one commit point a snapshot made of many objects has. A stale holder
(frozen, partitioned, a zombie) may have uploaded, but is refused here: its snapshot never becomes
the latest, and no later attempt reads it.

KEYS[1]  sweepd:run:<rid>               HASH  read token, state
KEYS[2]  sweepd:sweep:<sid>:held        ZSET  ZSCORE: the run is held
KEYS[3]  sweepd:run:<rid>:checkpoints   LIST  LPUSH the record (newest first), LTRIM to ARGV[4]
KEYS[4]  sweepd:sweep:<sid>:pins        HASH  HDEL the run's pin (its first own snapshot replaces the
                                              reference it started from); read: pinned snapshots stay
ARGV[1]  run id
ARGV[2]  attempt token of the caller
ARGV[3]  the snapshot's record (a JSON object: snapshot, attempt, files, bytes); committed_at (ms,
         Redis clock) is added here as its last field
ARGV[4]  how many committed snapshots to keep (at least 1)
ARGV[5]  the snapshot's id (as in the record)

Returns 0 when the caller no longer holds the run (nothing written); else {'ok', dropped...}: the
records (JSON) trimmed off the list, whose objects the caller deletes. A retried commit of the
snapshot already at the head writes nothing again. A snapshot another run's record references (a
pin, written by pbt_decide.lua) is never trimmed off: it stays at the list's tail, kept, until the
referencing run's own first commit drops the pin; the next trim after that returns it.
]]
if not holds(KEYS[1], ARGV[2]) then
  return 0
end
if redis.call('ZSCORE', KEYS[2], ARGV[1]) == false then
  return 0
end
local head = redis.call('LINDEX', KEYS[3], 0)
if head then
  local record = cjson.decode(head)
  if record['snapshot'] == ARGV[5] then
    return {'ok'}
  end
  if record['run'] and record['run'] ~= ARGV[1] then -- the reference it started from: replaced
    redis.call('LPOP', KEYS[3])
    redis.call('HDEL', KEYS[4], ARGV[1])
  end
end
redis.call('LPUSH', KEYS[3], string.sub(ARGV[3], 1, -2) .. ', "committed_at": ' .. now_ms() .. '}')
local keep = math.max(1, tonumber(ARGV[4]))
local dropped = redis.call('LRANGE', KEYS[3], keep, -1)
redis.call('LTRIM', KEYS[3], 0, keep - 1)
local pinned = {}
for _, pin in ipairs(redis.call('HVALS', KEYS[4])) do
  pinned[pin] = true
end
local out = {'ok'}
for _, item in ipairs(dropped) do
  if pinned[ARGV[1] .. ' ' .. cjson.decode(item)['snapshot']] then
    redis.call('RPUSH', KEYS[3], item)
  else
    out[#out + 1] = item
  end
end
return out
