-- How many times a job was taken back from a worker that died holding it (0 when never).
-- ARGV[1] redelivery-count key prefix, ARGV[2] raw job
return tonumber(redis.call('GET', ARGV[1] .. redis.sha1hex(ARGV[2])) or '0')
