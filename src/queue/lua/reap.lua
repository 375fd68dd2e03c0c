-- Requeue every job a dead worker held, at the front of the queue, and forget the worker.
-- Does nothing if the worker's heartbeat came back.
-- KEYS[1] dead worker's heartbeat, KEYS[2] its in-flight list, KEYS[3] processing list,
-- KEYS[4] set of known workers; ARGV[1] dead worker id, ARGV[2] session lock key prefix
if redis.call('EXISTS', KEYS[1]) == 1 then
  return -1
end
local moved = 0
while true do
  local job = redis.call('RPOP', KEYS[2])
  if not job then break end
  redis.call('RPUSH', KEYS[3], job)
  moved = moved + 1
  -- Release the dead worker's lock on that session so the next taker is not turned away.
  local ok, decoded = pcall(cjson.decode, job)
  if ok and type(decoded) == 'table' and type(decoded['session_id']) == 'string' then
    local lock = ARGV[2] .. decoded['session_id']
    if redis.call('GET', lock) == ARGV[1] then
      redis.call('DEL', lock)
    end
  end
end
redis.call('SREM', KEYS[4], ARGV[1])
return moved
