"""The Redis side of `algorithms.py`: the same math, in one atomic script for a whole batch.

KEYS: the keys of every hit, in order (see `store.key_layout`: 1 or 2 per hit).
ARGV: now (seconds), now on the token bucket's millisecond clock, then 11 values per hit:
algorithm code, limit, window, hits, charge_rejected, elapsed, ttl_ms, lockout_s, and for a
token bucket window_ms and `algorithms.emission` (whole ms, remainder), computed in Python
where integers are exact at any size. Returns one {allowed, remaining, reset_after} per hit,
the float formatted with %.17g so it round-trips exactly (Lua numbers would be truncated to
integers). Keep the arithmetic in the same order as algorithms.py: tests compare both bit for
bit.

A token bucket's arrival time (`algorithms.ArrivalTime`) is stored as
`+<seconds>.<ms: 3 digits><fraction: 10 digits><per: 10 digits>`: the instant rounded up to
the millisecond, then the fraction/per of a millisecond by which it passes the one before:
`+1700000062.40000000000030000000007` is 1700000062399 ms + 3/7 ms. The `+` marks that
layout. Read as a plain number, as the release before this one reads it during a rolling
upgrade, it is that instant rounded up to the millisecond (the trailing digits add under
half a millisecond): an older replica never finds the bucket emptier than it is. A value
without the `+` was written by that older release, as float seconds: it is read rounded up
to the millisecond, never earlier than the older replica meant. Anything else is an error
reply (the store is then unavailable to that request), never a silently full bucket.
"""

from __future__ import annotations

ALGORITHM_CODES = {
    "fixed_window": "f",
    "sliding_window": "s",
    "token_bucket": "t",
    "lockout": "l",
}

SCRIPT = r"""
local EPS = 1e-6
local now, now_ms = tonumber(ARGV[1]), tonumber(ARGV[2])
local function fmt(x) return string.format('%.17g', x) end
local function num(key)
  local v = redis.call('GET', key)
  if v then return tonumber(v) end
  return nil
end
-- A token bucket's arrival time: whole ms and a fraction in 1/limit ms (nil: none stored).
local function unreadable(key)
  error({err = 'ERR token bucket ' .. key .. ' holds an unreadable arrival time'})
end
local function read_tat(key)
  local v = redis.call('GET', key)
  if not v then return nil, 0 end
  if string.sub(v, 1, 1) == '+' then
    local d10 = string.rep('%d', 10)
    local s, ms, frac, per = string.match(v, '^%+(%d+)%.(%d%d%d)(' .. d10 .. ')(' .. d10 .. ')$')
    if not s then unreadable(key) end
    local up, f = tonumber(s) * 1000 + tonumber(ms), tonumber(frac)
    if f > 0 then return up - 1, f, tonumber(per) end
    return up, 0, 1
  end
  local old = tonumber(v)  -- float seconds, from the previous release
  if old == nil or old ~= old or old == math.huge or old == -math.huge then unreadable(key) end
  return math.ceil(old * 1000), 0, 1
end
-- Kept until the bucket is full again, and a second more (algorithms.bucket_ttl_ms).
local function write_tat(key, ms, f, per)
  local up = ms
  if f > 0 then up = ms + 1 end
  local v = string.format('+%d.%03d%010d%010d', math.floor(up / 1000), up % 1000, f, per)
  redis.call('SET', key, v, 'PX', up - now_ms + 1000)
end
local function tokens_left(tat_ms, tat_frac, limit, window_ms)
  local room = window_ms - (tat_ms - now_ms)
  return math.max(0, math.floor((room * limit - tat_frac) / window_ms))
end
local out = {}
local k, a = 1, 3
for i = 1, (#ARGV - 2) / 11 do
  local algo, limit, window = ARGV[a], tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2])
  local hits, charge = tonumber(ARGV[a + 3]), ARGV[a + 4] == '1'
  local elapsed, ttl = tonumber(ARGV[a + 5]), tonumber(ARGV[a + 6])
  local lockout_s = tonumber(ARGV[a + 7])
  local window_ms = tonumber(ARGV[a + 8])
  local cost_ms, cost_frac = tonumber(ARGV[a + 9]), tonumber(ARGV[a + 10])
  a = a + 11
  local allowed, remaining, reset
  if algo == 'f' then
    local key = KEYS[k]; k = k + 1
    local count = num(key) or 0
    local after = count + hits
    allowed = after <= limit
    local new = count
    if allowed or charge then new = after end
    if new ~= count then redis.call('SET', key, new, 'PX', ttl) end
    remaining = math.max(0, limit - new)
    reset = window - elapsed
  elseif algo == 's' then
    local cur_key, prev_key = KEYS[k], KEYS[k + 1]; k = k + 2
    local current, previous = num(cur_key) or 0, num(prev_key) or 0
    local weight = (window - elapsed) / window
    local estimate = previous * weight + current
    allowed = estimate + hits <= limit + EPS
    local new = current
    if allowed or charge then new = current + hits end
    if new ~= current then redis.call('SET', cur_key, new, 'PX', ttl) end
    local after = previous * weight + new
    remaining = math.max(0, math.floor(limit - after + EPS))
    reset = window - elapsed
    if (not allowed) and previous > 0 and new + hits <= limit then
      local fits_at = window * (1 - (limit - new - hits) / previous)
      reset = math.max(0, fits_at - elapsed)
    end
  elseif algo == 't' then
    local key = KEYS[k]; k = k + 1
    if limit <= 0 then
      allowed = hits == 0; remaining = 0; reset = window_ms / 1000
    else
      local tat_ms, tat_frac, tat_per = read_tat(key)
      local base_ms, base_frac = now_ms, 0
      if tat_ms ~= nil and tat_ms >= now_ms then
        base_ms, base_frac = tat_ms, tat_frac
        -- counted with another limit (a reload): rounded up to the millisecond
        if tat_per ~= limit and tat_frac > 0 then base_ms, base_frac = tat_ms + 1, 0 end
      end
      local sum = base_frac + cost_frac
      local new_frac = sum % limit
      local new_ms = base_ms + cost_ms + (sum - new_frac) / limit
      local beyond = new_ms - window_ms - now_ms
      if beyond < 0 or (beyond == 0 and new_frac == 0) then
        allowed = true
        remaining = tokens_left(new_ms, new_frac, limit, window_ms)
        reset = (new_ms - now_ms + new_frac / limit) / 1000
        if hits > 0 then write_tat(key, new_ms, new_frac, limit) end
      else
        allowed = false
        remaining = tokens_left(base_ms, base_frac, limit, window_ms)
        reset = (beyond + new_frac / limit) / 1000
      end
    end
  else
    local count_key, lock_key = KEYS[k], KEYS[k + 1]; k = k + 2
    local failures = (num(count_key) or 0) + hits
    local locked_until = num(lock_key)
    if hits > 0 and failures >= limit then
      locked_until = now + lockout_s; failures = 0
      redis.call('SET', lock_key, fmt(locked_until), 'PX', math.ceil(lockout_s * 1000))
      redis.call('DEL', count_key)
    elseif hits > 0 then
      redis.call('SET', count_key, failures, 'PX', ttl)
    end
    if locked_until ~= nil and locked_until > now then
      allowed = false; remaining = 0; reset = locked_until - now
    else
      allowed = true; remaining = math.max(0, limit - failures); reset = window - elapsed
    end
  end
  out[i] = {allowed and 1 or 0, remaining, fmt(reset)}
end
return out
"""
