-- Move a job from the in-flight list onto the failed list as a failure record, release its
-- session lock and forget its redelivery count.
-- KEYS[1] in-flight list, KEYS[2] failed list, KEYS[3] session lock
-- ARGV[1] raw job as taken, ARGV[2] failure record (JSON), ARGV[3] worker id,
-- ARGV[4] redelivery-count key prefix
local removed = redis.call('LREM', KEYS[1], 1, ARGV[1])
if removed == 0 then
  return 0
end
redis.call('LPUSH', KEYS[2], ARGV[2])
if redis.call('GET', KEYS[3]) == ARGV[3] then
  redis.call('DEL', KEYS[3])
end
redis.call('DEL', ARGV[4] .. redis.sha1hex(ARGV[1]))
return 1
