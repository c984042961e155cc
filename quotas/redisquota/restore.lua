-- Raises one quota counter to at least a persisted count. It never lowers
-- a counter: other instances may have counted since the count was read.
--
-- KEYS[1]: the counter.
-- ARGV[1]: the persisted count (a decimal integer); ARGV[2]: how long (ms)
--          the counter is kept from now.
-- Returns the counter after: the persisted count if it was raised to it,
-- the live one otherwise.
local want = tonumber(ARGV[1])
local live = tonumber(redis.call("GET", KEYS[1]) or "0") or 0
if want <= live then
  return live
end
redis.call("SET", KEYS[1], ARGV[1], "PX", ARGV[2])
return want
