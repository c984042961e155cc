-- Takes every limit and quota of one request, or none of them.
--
-- KEYS: the limits' keys, then the quotas' keys.
-- ARGV: number of limits, number of quotas, now in microseconds ("" to use
--       the server's TIME), then per limit: interval, tolerance (both in
--       microseconds) and cost; per quota: limit and the unix second its
--       period's key may expire at.
-- Returns: {allowed, then per limit: allowed, remaining, reset (µs),
--           retry after (µs); per quota: allowed, used}.
--
-- GCRA: a limit's key holds its theoretical arrival time (TAT); a request
-- of cost c is admitted when max(TAT, now) + c·interval - now <= tolerance.
local nl, nq = tonumber(ARGV[1]), tonumber(ARGV[2])
local now
if ARGV[3] == "" then
  local t = redis.call("TIME")
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
else
  now = tonumber(ARGV[3])
end

local allowed = 1
local out = {0}
local tats, used = {}, {}
local stored = {} -- limit key → TAT as stored, to report limits left untaken
local before = {} -- per limit: {interval, tolerance, key}
local a = 4
for i = 1, nl do
  local key = KEYS[i]
  local interval, tolerance, cost = tonumber(ARGV[a]), tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2])
  a = a + 3
  local tat = tats[key]
  if tat == nil then
    tat = tonumber(redis.call("GET", key) or "0")
    stored[key] = tat
  end
  before[i] = {interval, tolerance, key}
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
  tats[key] = tat
  out[#out + 1] = ok
  out[#out + 1] = remaining
  out[#out + 1] = reset
  out[#out + 1] = retry
end

local expiries = {}
for j = 1, nq do
  local key = KEYS[nl + j]
  local limit, expireat = tonumber(ARGV[a]), tonumber(ARGV[a + 1])
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
  expiries[key] = expireat
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
      local interval, tolerance, tat = before[i][1], before[i][2], stored[before[i][3]]
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
  return out
end
do
  for key, tat in pairs(tats) do
    -- The key is needed until its TAT: after it, absent is the same.
    -- %d: the default conversion keeps 14 digits, and a TAT has 16.
    redis.call("SET", key, string.format("%d", tat), "PX", string.format("%d", math.max(1, math.ceil((tat - now) / 1000))))
  end
  for key, u in pairs(used) do
    redis.call("SET", key, string.format("%d", u), "EXAT", string.format("%d", expiries[key]))
  end
end
return out
