-- Gives back what take.lua took for one request, when the request was
-- refused by limits in another Redis Cluster slot.
--
-- KEYS: per limit its key (or, for a fair-share limit, its pool's three
--       keys), then the quotas' keys, as take.lua had them.
-- ARGV: number of limits, number of quotas, now in microseconds ("" to use
--       the server's TIME), then per limit: the time it took (µs), the
--       tenant ("" but for a fair-share limit), 1 if the take made the
--       tenant active in its pool, and the TAT the take wrote.
--
-- A limit's TAT moves back by the part of the take still ahead of now:
-- min(took, TAT written - now). Never more: a request that came after the
-- take, once the take's TAT had passed, started from its own arrival and
-- owes the take nothing, so taking the whole of it back would erase that
-- request's units. The TAT is thus never below what it would be had the
-- take not happened. A tenant the take made active leaves the pool again,
-- unless a request admitted since keeps its TAT ahead of now.
local nl, nq = tonumber(ARGV[1]), tonumber(ARGV[2])
local now
if ARGV[3] == "" then
  local t = redis.call("TIME")
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
else
  now = tonumber(ARGV[3])
end
local function int(n)
  return string.format("%d", n)
end

local a, k = 4, 1
for i = 1, nl do
  local tenant, fresh = ARGV[a + 1], ARGV[a + 2]
  local took = math.min(tonumber(ARGV[a]), math.max(0, tonumber(ARGV[a + 3]) - now))
  a = a + 4
  if tenant == "" then
    local key = KEYS[k]
    k = k + 1
    local tat = tonumber(redis.call("GET", key) or "0") - took
    if tat <= now then
      redis.call("DEL", key)
    else
      redis.call("SET", key, int(tat), "PX", int(math.max(1, math.ceil((tat - now) / 1000))))
    end
  else
    local active, tenants, classes = KEYS[k], KEYS[k + 1], KEYS[k + 2]
    k = k + 3
    local v = redis.call("HGET", tenants, tenant)
    if v then
      local tat, class = string.match(v, "^(%d+) (.+)$")
      if tat then
        tat = tonumber(tat) - took
        if fresh == "1" and tat <= now then
          redis.call("HDEL", tenants, tenant)
          redis.call("ZREM", active, tenant)
          if redis.call("HINCRBY", classes, class, -1) <= 0 then
            redis.call("HDEL", classes, class)
          end
        else
          redis.call("HSET", tenants, tenant, int(tat) .. " " .. class)
        end
      end
    end
  end
end
for j = 1, nq do
  local key = KEYS[k]
  k = k + 1
  if tonumber(redis.call("GET", key) or "0") > 0 then
    redis.call("DECR", key)
  end
end
return 1
