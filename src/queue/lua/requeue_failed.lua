-- Take one record off the failed list and put its job back on the queue.
-- KEYS[1] failed list, KEYS[2] processing list; ARGV[1] record as stored, ARGV[2] job payload
local removed = redis.call('LREM', KEYS[1], 1, ARGV[1])
if removed == 0 then
  return 0
end
redis.call('LPUSH', KEYS[2], ARGV[2])
return 1
