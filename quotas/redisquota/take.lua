-- Takes every limit and quota of one request, or none of them.
--
-- KEYS: per limit, its key, or for a fair-share limit its pool's three
--       keys (active tenants, tenants, classes, in one hash slot); then
--       the quotas' keys.
-- ARGV: number of limits, number of quotas, now in microseconds ("" to use
--       the server's TIME), then per limit: interval, tolerance (both in
--       microseconds), cost and tenant ("" but for a fair-share limit),
--       and for a fair-share limit its class ("<weight>|<max share>") and
--       window (microseconds); per quota: limit and how long (ms) its
--       period's key is kept from now (relative, so a limiter on a test
--       clock writes keys that live as long as on the real one).
-- Returns: {allowed, then per limit: allowed, remaining, reset (µs),
--           retry after (µs); per quota: allowed, used; then per limit
--           the time it took (cost·interval, µs; 0 when nothing was
--           taken), per limit 1 when it made its tenant active in its
--           pool (0 otherwise), and per limit the TAT it wrote, for a
--           refund (refund.lua)}.
--
-- GCRA: a limit's key holds its theoretical arrival time (TAT); a request
-- of cost c is admitted when max(TAT, now) + c·interval - now <= tolerance.
--
-- Fair share (quotas.Share, whose arithmetic this mirrors operation for
-- operation): a pool's tenants are active until their TAT plus a window
-- ("active": tenant → that time, a sorted set); "tenants" holds each
-- active tenant's "<TAT> <class>", and "classes" how many active tenants
-- each class has. A tenant's share of the capacity is found by
-- water-filling over the classes; its GCRA runs at that share.
local nl, nq = tonumber(ARGV[1]), tonumber(ARGV[2])
local now
if ARGV[3] == "" then
  local t = redis.call("TIME")
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
else
  now = tonumber(ARGV[3])
end
-- %d: the default conversion keeps 14 digits, and a time has 16.
local function int(n)
  return string.format("%d", n)
end

-- pool returns the tentative state of the pool whose keys start at
-- KEYS[k], after dropping the tenants no longer active (an idle tenant is
-- the same as one never seen, so this needs no undoing).
local pools = {}
local function pool(k)
  local p = pools[KEYS[k]]
  if p then
    return p
  end
  local active, tenants, classes = KEYS[k], KEYS[k + 1], KEYS[k + 2]
  local gone = redis.call("ZRANGEBYSCORE", active, "-inf", int(now))
  if #gone > 0 then
    for _, t in ipairs(gone) do
      local v = redis.call("HGET", tenants, t)
      if v then
        local class = string.match(v, "^%d+ (.+)$")
        if class and redis.call("HINCRBY", classes, class, -1) <= 0 then
          redis.call("HDEL", classes, class)
        end
        redis.call("HDEL", tenants, t)
      end
    end
    redis.call("ZREMRANGEBYSCORE", active, "-inf", int(now))
  end
  p = {keys = {active, tenants, classes}, classes = {}, members = {}}
  local flat = redis.call("HGETALL", classes)
  for i = 1, #flat, 2 do
    local n = tonumber(flat[i + 1])
    if n > 0 then
      p.classes[flat[i]] = n
    end
  end
  pools[active] = p
  return p
end

-- member returns the tentative state of a tenant of pool p.
local function member(p, tenant)
  local m = p.members[tenant]
  if m then
    return m
  end
  m = {counted = false, stored = 0, tat = 0, existed = false}
  local v = redis.call("HGET", p.keys[2], tenant)
  if v then
    local tat, class = string.match(v, "^(%d+) (.+)$")
    m.counted, m.class, m.stored, m.tat, m.existed = true, class, tonumber(tat), tonumber(tat), true
  end
  p.members[tenant] = m
  return m
end

local function parse(class)
  local w, c = string.match(class, "^(.-)|(.*)$")
  return tonumber(w), tonumber(c)
end

-- fair_share is quotas.FairShare: the share of a tenant of weight w and
-- cap c among the active tenants counted by class.
local function fair_share(w, c, classes)
  local list, n = {}, 0
  for class, k in pairs(classes) do
    if k > 0 then
      local cw, cc = parse(class)
      list[#list + 1] = {cw, cc, k}
      n = n + k
    end
  end
  if n <= 1 then
    return 1
  end
  table.sort(list, function(x, y)
    local rx, ry = x[2] / x[1], y[2] / y[1]
    if rx ~= ry then
      return rx < ry
    end
    if x[1] ~= y[1] then
      return x[1] < y[1]
    end
    return x[2] < y[2]
  end)
  local rest, weights, left = 1.0, 0.0, n
  for _, e in ipairs(list) do
    weights = weights + e[3] * e[1]
  end
  for _, e in ipairs(list) do
    if not (weights > 0) or rest / weights * e[1] < e[2] then
      break
    end
    rest = rest - e[3] * e[2]
    weights = weights - e[3] * e[1]
    left = left - e[3]
  end
  if left == 0 or not (weights > 0) then
    return c
  end
  local s = rest / weights * w
  if not (s > 0) then
    return 0
  end
  return math.min(c, s)
end

local allowed = 1
local out = {0}
local tats, used = {}, {}
local taken = {} -- per limit: the time it took
local fresh = {} -- per limit: 1 if it made its tenant active
local wrote = {} -- per limit: the TAT it wrote
local stored = {} -- limit key → TAT as stored
local before = {} -- per limit: {interval, tolerance, TAT as stored}, to report it untaken
local a, k = 4, 1
for i = 1, nl do
  local interval, tolerance, cost, tenant = tonumber(ARGV[a]), tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2]), ARGV[a + 3]
  a = a + 4
  local key, m, window, tat
  if tenant == "" then
    key = KEYS[k]
    k = k + 1
    tat = tats[key]
    if tat == nil then
      tat = tonumber(redis.call("GET", key) or "0")
      stored[key] = tat
    end
    before[i] = {interval, tolerance, stored[key]}
  else
    local class = ARGV[a]
    window = tonumber(ARGV[a + 1])
    a = a + 2
    local p = pool(k)
    k = k + 3
    m = member(p, tenant)
    if m.counted and m.class ~= class then
      p.classes[m.class] = (p.classes[m.class] or 0) - 1
      if p.classes[m.class] <= 0 then
        p.classes[m.class] = nil
      end
      m.counted = false
    end
    if not m.counted then
      p.classes[class] = (p.classes[class] or 0) + 1
      m.counted, m.class = true, class
    end
    if interval > 0 then
      local w, c = parse(class)
      local x = interval / fair_share(w, c, p.classes)
      if not (x < 1099511627776) then -- 2^40 µs, about 12.7 days
        x = 1099511627776
      end
      interval = math.floor(x)
      if cost * interval <= 2305843009213693 then -- quotas.maxTolerance in µs
        tolerance = math.max(tolerance, cost * interval)
      end
    end
    tat = m.tat
    before[i] = {interval, tolerance, m.stored}
  end
  local base = math.max(tat, now)
  local ok, remaining, reset, retry = 0, 0, math.max(0, tat - now), 0
  if interval == 0 or cost * interval > tolerance then
    retry = -1 -- never this much at once: the caller waits a window
  else
    local ahead = base + cost * interval - now
    if ahead > tolerance then
      retry = ahead - tolerance
      remaining = math.max(0, math.floor((tolerance - (base - now)) / interval))
    else
      ok, remaining, reset = 1, math.floor((tolerance - ahead) / interval), ahead
      tat = base + cost * interval
    end
  end
  if ok == 0 then
    allowed = 0
  end
  taken[i] = ok * cost * interval
  wrote[i] = ok * tat
  fresh[i] = 0
  if m and ok == 1 and not m.existed then
    fresh[i], m.existed = 1, true
  end
  if m then
    if ok == 1 then
      m.tat, m.idle = tat, tat + window
    end
  else
    tats[key] = tat
  end
  out[#out + 1] = ok
  out[#out + 1] = remaining
  out[#out + 1] = reset
  out[#out + 1] = retry
end

local expiries = {}
for j = 1, nq do
  local key = KEYS[k]
  k = k + 1
  local limit, keep = tonumber(ARGV[a]), tonumber(ARGV[a + 1])
  a = a + 2
  local u = used[key]
  if u == nil then
    u = tonumber(redis.call("GET", key) or "0")
  end
  local ok = 0
  if u < limit then
    ok, u = 1, u + 1
  else
    allowed = 0
  end
  used[key] = u
  expiries[key] = keep
  out[#out + 1] = ok
  out[#out + 1] = u
end

out[1] = allowed
if allowed == 0 then
  -- Nothing is taken: report the limits and quotas that admitted the
  -- request as they stand.
  for i = 1, nl do
    local o = 2 + (i - 1) * 4
    if out[o] == 1 then
      local interval, tolerance, tat = before[i][1], before[i][2], before[i][3]
      local ahead = math.max(0, tat - now)
      out[o + 1] = math.max(0, math.floor((tolerance - ahead) / interval))
      out[o + 2] = ahead
    end
  end
  for j = 1, nq do
    local o = 2 + nl * 4 + (j - 1) * 2
    if out[o] == 1 then
      out[o + 1] = out[o + 1] - 1
    end
  end
  for i = 1, 3 * nl do
    out[#out + 1] = 0
  end
  return out
end
for key, tat in pairs(tats) do
  -- The key is needed until its TAT: after it, absent is the same.
  redis.call("SET", key, int(tat), "PX", int(math.max(1, math.ceil((tat - now) / 1000))))
end
for key, u in pairs(used) do
  redis.call("SET", key, int(u), "PX", int(math.max(1, expiries[key])))
end
for _, p in pairs(pools) do
  local active, tenants, classes = p.keys[1], p.keys[2], p.keys[3]
  for tenant, m in pairs(p.members) do
    redis.call("HSET", tenants, tenant, int(m.tat) .. " " .. m.class)
    redis.call("ZADD", active, int(m.idle), tenant)
  end
  redis.call("DEL", classes)
  for class, n in pairs(p.classes) do
    redis.call("HSET", classes, class, n)
  end
  -- The pool is needed until its last tenant goes idle.
  local last = redis.call("ZRANGE", active, -1, -1, "WITHSCORES")
  local ttl = int(math.max(1, math.ceil((tonumber(last[2]) - now) / 1000)))
  for _, key in ipairs(p.keys) do
    redis.call("PEXPIRE", key, ttl)
  end
end
for i = 1, nl do
  out[#out + 1] = taken[i]
end
for i = 1, nl do
  out[#out + 1] = fresh[i]
end
for i = 1, nl do
  out[#out + 1] = wrote[i]
end
return out
