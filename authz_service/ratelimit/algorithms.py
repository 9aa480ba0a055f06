"""The limit math, written once, with the clock passed in.

Each function takes the stored state and the hit, and returns the new state and a `Verdict`.
The in-memory store calls these directly; the Redis store runs `lua.py`, a line-by-line
transcription performing the same float operations in the same order (Lua numbers and Python
floats are both IEEE doubles), and tests check both stores agree.

- fixed window: a counter per aligned window (`floor(now / window)`), like envoyproxy/ratelimit.
- sliding window: the weighted previous window (Cloudflare's approximation): two counters,
  `estimate = previous * (1 - elapsed / window) + current`. O(1) memory per key, unlike a log,
  and smooth across the window edge where a fixed window lets 2N through.
- token bucket, as GCRA: one "theoretical arrival time" per key; `requests_per_unit` is the
  burst and the refill is one token every `window / requests_per_unit` seconds.
- lockout: failures counted in a fixed window; reaching the threshold locks the key for a set
  time (brute-force defence).
`reset_after` is the time until the quota is whole again when allowed, and the earliest time a
retry can succeed when rejected (a lower bound, so caching a rejection never over-blocks).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

# Float slack for comparisons and floors: epoch-sized timestamps carry ~0.2 us of rounding.
EPSILON = 1e-6


@dataclass(frozen=True, slots=True)
class Verdict:
    allowed: bool
    remaining: int
    reset_after: float  # seconds


@dataclass(frozen=True, slots=True)
class WindowPosition:
    index: int  # floor(now / window): names the counter of the current window
    elapsed: float  # seconds since the window began

    @classmethod
    def at(cls, now: float, window: float) -> WindowPosition:
        index = math.floor(now / window)
        return cls(index, now - index * window)


def fixed_window(
    count: int, hits: int, limit: int, charge_rejected: bool, elapsed: float, window: float
) -> tuple[int, Verdict]:
    after = count + hits
    allowed = after <= limit
    new_count = after if (allowed or charge_rejected) else count
    return new_count, Verdict(allowed, max(0, limit - new_count), window - elapsed)


def sliding_window(
    previous: int,
    current: int,
    hits: int,
    limit: int,
    charge_rejected: bool,
    elapsed: float,
    window: float,
) -> tuple[int, Verdict]:
    weight = (window - elapsed) / window
    estimate = previous * weight + current
    allowed = estimate + hits <= limit + EPSILON
    new_current = current + hits if (allowed or charge_rejected) else current
    after = previous * weight + new_current
    remaining = max(0, math.floor(limit - after + EPSILON))
    reset_after = window - elapsed
    if not allowed and previous > 0 and new_current + hits <= limit:
        # The previous window's weight decays linearly: solve for when the hit fits.
        fits_at = window * (1 - (limit - new_current - hits) / previous)
        reset_after = max(0.0, fits_at - elapsed)
    return new_current, Verdict(allowed, remaining, reset_after)


def token_bucket(
    tat: float | None, hits: int, limit: int, window: float, now: float
) -> tuple[float | None, Verdict]:
    """GCRA. `tat` is when the bucket will be full again (None: it is full)."""
    if limit <= 0:
        return tat, Verdict(hits == 0, 0, window)
    interval = window / limit
    base = now if tat is None or tat < now else tat
    new_tat = base + hits * interval
    allowed = new_tat - window <= now + EPSILON
    if allowed:
        remaining = max(0, math.floor((window - (new_tat - now)) / interval + EPSILON))
        return (new_tat if hits > 0 else tat), Verdict(True, remaining, new_tat - now)
    remaining = max(0, math.floor((window - (base - now)) / interval + EPSILON))
    return tat, Verdict(False, remaining, new_tat - window - now)


def lockout(
    failures: int,
    locked_until: float | None,
    hits: int,
    max_failures: int,
    lockout_s: float,
    elapsed: float,
    window: float,
    now: float,
) -> tuple[int, float | None, Verdict]:
    """`hits` failures are recorded (0 = only ask); returns (failures, locked_until, verdict)."""
    failures += hits
    if hits > 0 and failures >= max_failures:
        locked_until, failures = now + lockout_s, 0
    if locked_until is not None and locked_until > now:
        return failures, locked_until, Verdict(False, 0, locked_until - now)
    return failures, None, Verdict(True, max(0, max_failures - failures), window - elapsed)
