-- Give one job back untouched: from the in-flight list to the front of the queue (taken next),
-- releasing its session lock; its redelivery count is unchanged (nobody died).
-- KEYS[1] in-flight list, KEYS[2] processing list, KEYS[3] session lock
-- ARGV[1] raw job as taken, ARGV[2] worker id
local removed = redis.call('LREM', KEYS[1], 1, ARGV[1])
if removed == 0 then
  return 0
end
redis.call('RPUSH', KEYS[2], ARGV[1])
if redis.call('GET', KEYS[3]) == ARGV[2] then
  redis.call('DEL', KEYS[3])
end
return 1
