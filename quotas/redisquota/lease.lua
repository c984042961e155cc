-- Acquires a slot of every lease of one request under one lease id, or
-- none of them.
--
-- KEYS: the leases' keys, each a sorted set whose members are lease ids
--       scored by their expiry in microseconds.
-- ARGV: lease id, now in microseconds ("" to use the server's TIME), then
--       per lease: limit and TTL in microseconds.
-- Returns: {allowed, then per lease: allowed, in use, retry after (µs)}.
--
-- A lease whose expiry is at or before now counts for nothing and is
-- removed. An id already holding a key is admitted on it again and its
-- expiry renewed; it counts once.
local id = ARGV[1]
local now
if ARGV[2] == "" then
  local t = redis.call("TIME")
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
else
  now = tonumber(ARGV[2])
end
-- %d: the default conversion keeps 14 digits, and a time in µs has 16.
local nows = string.format("%d", now)

local allowed = 1
local out = {0}
local held = {}
for i = 1, #KEYS do
  local key = KEYS[i]
  local limit, ttl = tonumber(ARGV[2 * i + 1]), tonumber(ARGV[2 * i + 2])
  redis.call("ZREMRANGEBYSCORE", key, "-inf", nows)
  local inuse = redis.call("ZCARD", key)
  held[i] = redis.call("ZSCORE", key, id) ~= false
  local ok, retry = 0, 0
  if held[i] or inuse < limit then
    ok = 1
  elseif limit == 0 then
    retry = ttl
  else
    local first = redis.call("ZRANGE", key, 0, 0, "WITHSCORES")
    retry = tonumber(first[2]) - now
  end
  if ok == 0 then
    allowed = 0
  end
  out[#out + 1] = ok
  out[#out + 1] = inuse
  out[#out + 1] = retry
end

out[1] = allowed
if allowed == 0 then
  return out
end
for i = 1, #KEYS do
  local key = KEYS[i]
  local ttl = tonumber(ARGV[2 * i + 2])
  redis.call("ZADD", key, string.format("%d", now + ttl), id)
  if not held[i] then
    out[1 + (i - 1) * 3 + 2] = out[1 + (i - 1) * 3 + 2] + 1
  end
  -- The set is needed until its last lease expires: after that, absent
  -- is the same.
  local last = redis.call("ZRANGE", key, -1, -1, "WITHSCORES")
  local ms = math.max(1, math.ceil((tonumber(last[2]) - now) / 1000))
  redis.call("PEXPIRE", key, string.format("%d", ms))
end
return out
