-- Ack a finished job: drop it from the worker's in-flight list and release the session lock
-- if this worker still holds it.
-- KEYS[1] in-flight list, KEYS[2] session lock; ARGV[1] raw job, ARGV[2] worker id
local removed = redis.call('LREM', KEYS[1], 1, ARGV[1])
if redis.call('GET', KEYS[2]) == ARGV[2] then
  redis.call('DEL', KEYS[2])
end
return removed
