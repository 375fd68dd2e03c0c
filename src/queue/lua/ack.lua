-- Ack a finished job: drop it from the worker's in-flight list, release the session lock if this
-- worker still holds it, and (when ARGV[3] is not empty) forget the job's redelivery count.
-- KEYS[1] in-flight list, KEYS[2] session lock
-- ARGV[1] raw job, ARGV[2] worker id, ARGV[3] redelivery-count key prefix, or '' to keep the count
-- (a duplicate dropped because another worker holds the session shares that job's count)
local removed = redis.call('LREM', KEYS[1], 1, ARGV[1])
if redis.call('GET', KEYS[2]) == ARGV[2] then
  redis.call('DEL', KEYS[2])
end
if removed > 0 and ARGV[3] ~= '' then
  redis.call('DEL', ARGV[3] .. redis.sha1hex(ARGV[1]))
end
return removed
