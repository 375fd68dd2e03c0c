-- Extend a session lock this worker holds. KEYS[1] lock; ARGV[1] worker id, ARGV[2] ttl (ms)
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
