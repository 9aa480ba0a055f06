"""The token bucket of the release before integer arrival times, as an older replica still
runs it during a rolling upgrade: its arithmetic and its float-seconds value, unchanged, cut
down to one hit on one key.

KEYS[1]: the bucket. ARGV: now (seconds), limit, window (seconds), hits.
Returns {allowed, remaining, reset_after}, the float as %.17g.
"""

from __future__ import annotations

from redis.asyncio import Redis

from authz_service.ratelimit.algorithms import Verdict

TOKEN_BUCKET_SCRIPT = r"""
local EPS = 1e-6
local now, limit, window = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local hits = tonumber(ARGV[4])
local key = KEYS[1]
local function fmt(x) return string.format('%.17g', x) end
local v = redis.call('GET', key)
local tat = nil
if v then tat = tonumber(v) end
local allowed, remaining, reset
local interval = window / limit
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
return {allowed and 1 or 0, remaining, fmt(reset)}
"""


async def previous_release_hit(
    client: Redis, key: str, limit: int, window_s: float, hits: int, now: float
) -> Verdict:
    allowed, remaining, reset = await client.eval(  # type: ignore[misc]
        TOKEN_BUCKET_SCRIPT, 1, key, repr(now), str(limit), repr(window_s), str(hits)
    )
    return Verdict(bool(int(allowed)), int(remaining), float(reset))
