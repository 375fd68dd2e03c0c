-- Move retries whose time has come from the retry set back onto the queue.
-- KEYS[1] retry set, KEYS[2] processing list; ARGV[1] now (ms), ARGV[2] most to move
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for _, job in ipairs(due) do
  redis.call('ZREM', KEYS[1], job)
  redis.call('LPUSH', KEYS[2], job)
end
return #due
