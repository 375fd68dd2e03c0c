-- Requeue every job a worker held, at the front of the queue, release that worker's locks on
-- those sessions (else the next taker would drop the job as a duplicate), and forget the worker.
-- With ARGV[3] = '1' (reaping another worker) nothing happens if its heartbeat came back; a
-- worker restarting under its own id passes '0'. With ARGV[6] = '1' the worker died holding
-- the jobs: each job's redelivery count goes up by one, in this same atomic step, so a job that
-- keeps killing its workers is seen as such by the next taker. A worker that gives its jobs back
-- (a drain that timed out, a reload) passes '0'.
-- KEYS[1] the worker's heartbeat, KEYS[2] its in-flight list, KEYS[3] processing list,
-- KEYS[4] set of known workers; ARGV[1] worker id, ARGV[2] session lock key prefix,
-- ARGV[3] '1' to require an expired heartbeat, ARGV[4] redelivery-count key prefix,
-- ARGV[5] how long a count is kept (s), ARGV[6] '1' to count the redelivery
if ARGV[3] == '1' and redis.call('EXISTS', KEYS[1]) == 1 then
  return -1
end
local moved = 0
while true do
  local job = redis.call('RPOP', KEYS[2])
  if not job then break end
  redis.call('RPUSH', KEYS[3], job)
  moved = moved + 1
  if ARGV[6] == '1' then
    local count = ARGV[4] .. redis.sha1hex(job)
    redis.call('INCR', count)
    redis.call('EXPIRE', count, tonumber(ARGV[5]))
  end
  -- Release the worker's lock on that session so the next taker is not turned away.
  local ok, decoded = pcall(cjson.decode, job)
  if ok and type(decoded) == 'table' and type(decoded['session_id']) == 'string' then
    local lock = ARGV[2] .. string.lower(decoded['session_id'])
    if redis.call('GET', lock) == ARGV[1] then
      redis.call('DEL', lock)
    end
  end
end
redis.call('SREM', KEYS[4], ARGV[1])
return moved
