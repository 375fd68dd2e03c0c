-- Move a failed job from the in-flight list into the retry set, due at ARGV[3], as the payload
-- of its next attempt; its redelivery count (deaths of workers holding it) follows it there.
-- Only a job still in this worker's list moves (a reaped job belongs to someone else now).
-- KEYS[1] in-flight list, KEYS[2] retry set, KEYS[3] session lock
-- ARGV[1] raw job as taken, ARGV[2] payload for the next attempt, ARGV[3] due (ms),
-- ARGV[4] worker id, ARGV[5] redelivery-count key prefix, ARGV[6] how long a count is kept (s)
local removed = redis.call('LREM', KEYS[1], 1, ARGV[1])
if removed == 0 then
  return 0
end
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[2])
if redis.call('GET', KEYS[3]) == ARGV[4] then
  redis.call('DEL', KEYS[3])
end
local from = ARGV[5] .. redis.sha1hex(ARGV[1])
local count = redis.call('GET', from)
if count then
  redis.call('DEL', from)
  redis.call('SET', ARGV[5] .. redis.sha1hex(ARGV[2]), count, 'EX', tonumber(ARGV[6]))
end
return 1
