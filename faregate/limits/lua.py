"""The Lua scripts of the Redis limiter: each check-and-count is one atomic round trip."""

from __future__ import annotations

# Times are the Redis server's (`TIME`, in ms), so every replica counts on one clock. Numbers
# are written with `%d`: Lua 5.1 prints numbers as `%.14g`, which could round timestamps.
_COMMON = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local W = 60000
local function s(n) return string.format('%d', n) end
local function prune_tokens(log, sum)
  local gone = redis.call('ZRANGEBYSCORE', log, '-inf', s(now - W))
  if #gone > 0 then
    local n = 0
    for _, m in ipairs(gone) do n = n + tonumber(string.match(m, ':(%d+)$')) end
    redis.call('ZREMRANGEBYSCORE', log, '-inf', s(now - W))
    redis.call('DECRBY', sum, n)
  end
  if redis.call('ZCARD', log) == 0 then
    redis.call('DEL', sum)
    return 0
  end
  return tonumber(redis.call('GET', sum) or '0')
end
"""

ACQUIRE = (
    _COMMON
    + """
-- KEYS: requests log, day counter, tokens log, tokens sum, slots
-- ARGV: rpm, rpd, tpm, concurrency (0: no such limit), member, slot ttl (ms)
local rpm, rpd = tonumber(ARGV[1]), tonumber(ARGV[2])
local tpm, conc = tonumber(ARGV[3]), tonumber(ARGV[4])
local member, ttl = ARGV[5], tonumber(ARGV[6])
local status, retry = 0, -1
local function refuse(code, wait)
  if wait > retry then status, retry = code, wait end
end
local function oldest(key)
  local first = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
  if #first == 0 then return now end
  return tonumber(first[2])
end

local used, first = 0, now
if rpm > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', s(now - W))
  used = redis.call('ZCARD', KEYS[1])
  first = oldest(KEYS[1])
  if used >= rpm then
    local nth = redis.call('ZRANGE', KEYS[1], used - rpm, used - rpm, 'WITHSCORES')
    refuse(1, tonumber(nth[2]) + W - now)
  end
end

local day = math.floor(now / 86400000)
local today = 0
if rpd > 0 then
  local stored = redis.call('HMGET', KEYS[2], 'day', 'n')
  if tonumber(stored[1]) == day then today = tonumber(stored[2]) or 0 end
  if today >= rpd then refuse(2, (day + 1) * 86400000 - now) end
end

local tokens, tfirst = 0, now
if tpm > 0 then
  tokens = prune_tokens(KEYS[3], KEYS[4])
  tfirst = oldest(KEYS[3])
  if tokens >= tpm then
    local left = tokens
    local entries = redis.call('ZRANGE', KEYS[3], 0, -1, 'WITHSCORES')
    for i = 1, #entries, 2 do
      left = left - tonumber(string.match(entries[i], ':(%d+)$'))
      if left < tpm then
        refuse(3, tonumber(entries[i + 1]) + W - now)
        break
      end
    end
  end
end

if conc > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[5], '-inf', s(now))
  if redis.call('ZCARD', KEYS[5]) >= conc then refuse(4, 1000) end
end

if status == 0 then
  retry = 0
  if rpm > 0 then
    redis.call('ZADD', KEYS[1], s(now), member)
    redis.call('PEXPIRE', KEYS[1], W)
    if used == 0 then first = now end
    used = used + 1
  end
  if rpd > 0 then
    today = today + 1
    redis.call('HSET', KEYS[2], 'day', s(day), 'n', s(today))
    redis.call('PEXPIREAT', KEYS[2], s((day + 1) * 86400000 + W))
  end
  if conc > 0 then
    redis.call('ZADD', KEYS[5], s(now + ttl), member)
    redis.call('PEXPIRE', KEYS[5], ttl)
  end
end
return {status, retry, now, used, first, today, tokens, tfirst}
"""
)

RECORD = (
    _COMMON
    + """
-- KEYS: tokens log, tokens sum; ARGV: member ending in ':<tokens>', tokens
prune_tokens(KEYS[1], KEYS[2])
redis.call('ZADD', KEYS[1], s(now), ARGV[1])
redis.call('INCRBY', KEYS[2], ARGV[2])
redis.call('PEXPIRE', KEYS[1], W + 1000)
redis.call('PEXPIRE', KEYS[2], W + 1000)
return 1
"""
)

REFRESH = """
-- KEYS: slot sets; ARGV: ttl (ms), then one member per key: push live slots' expiry on
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[1])
for i, key in ipairs(KEYS) do
  redis.call('ZADD', key, 'XX', string.format('%d', now + ttl), ARGV[i + 1])
  redis.call('PEXPIRE', key, ttl)
end
return #KEYS
"""
