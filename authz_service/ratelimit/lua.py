"""The Redis side of `algorithms.py`: the same math, in one atomic script for a whole batch.

KEYS: the keys of every hit, in order (see `store.key_layout`: 1 or 2 per hit).
ARGV: now, then 8 values per hit: algorithm code, limit, window, hits, charge_rejected,
elapsed, ttl_ms, lockout_s. Returns one {allowed, remaining, reset_after} per hit, the float
formatted with %.17g so it round-trips exactly (Lua numbers would be truncated to integers).
Keep the arithmetic in the same order as algorithms.py: tests compare both bit for bit.
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
local now = tonumber(ARGV[1])
local function fmt(x) return string.format('%.17g', x) end
local function num(key)
  local v = redis.call('GET', key)
  if v then return tonumber(v) end
  return nil
end
local out = {}
local k, a = 1, 2
for i = 1, (#ARGV - 1) / 8 do
  local algo, limit, window = ARGV[a], tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2])
  local hits, charge = tonumber(ARGV[a + 3]), ARGV[a + 4] == '1'
  local elapsed, ttl = tonumber(ARGV[a + 5]), tonumber(ARGV[a + 6])
  local lockout_s = tonumber(ARGV[a + 7])
  a = a + 8
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
      allowed = hits == 0; remaining = 0; reset = window
    else
      local interval = window / limit
      local tat = num(key)
      local base = now
      if tat ~= nil and tat >= now then base = tat end
      local new_tat = base + hits * interval
      allowed = new_tat - window <= now + EPS
      if allowed then
        remaining = math.max(0, math.floor((window - (new_tat - now)) / interval + EPS))
        reset = new_tat - now
        if hits > 0 then
          redis.call('SET', key, fmt(new_tat), 'PX', math.ceil((new_tat - now) * 1000) + 1000)
        end
      else
        remaining = math.max(0, math.floor((window - (base - now)) / interval + EPS))
        reset = new_tat - window - now
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
