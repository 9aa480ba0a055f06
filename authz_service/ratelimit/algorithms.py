"""The limit math, written once, with the clock passed in.

Each function takes the stored state and the hit, and returns the new state and a `Verdict`.
The in-memory store calls these directly; the Redis store runs `lua.py`, a line-by-line
transcription performing the same operations in the same order (Lua numbers and Python floats
are both IEEE doubles; integers below 2^53 are exact in both), and tests check both stores agree.

- fixed window: a counter per aligned window (`floor(now / window)`), like envoyproxy/ratelimit.
- sliding window: the weighted previous window (Cloudflare's approximation): two counters,
  `estimate = previous * (1 - elapsed / window) + current`. O(1) memory per key, unlike a log,
  and smooth across the window edge where a fixed window lets 2N through.
- token bucket, as GCRA: one "theoretical arrival time" per key; `requests_per_unit` is the
  burst and the refill is one token every `window / requests_per_unit`. In integers: whole
  milliseconds plus a remainder in 1/limit ms (`ArrivalTime`), so the arrival time is exact
  however many intervals it adds up. (A float gained rounding error with every interval added
  at an epoch-sized magnitude: a burst of 25 a minute admitted 24.)
- lockout: failures counted in a fixed window; reaching the threshold locks the key for a set
  time (brute-force defence).
`reset_after` is the time until the quota is whole again when allowed, and the earliest time a
retry can succeed when rejected (a lower bound, so caching a rejection never over-blocks).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

# Float slack for the sliding window's comparisons and floors: epoch-sized timestamps carry
# ~0.2 us of rounding. (The token bucket counts in integers and needs none.)
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


@dataclass(frozen=True, slots=True)
class ArrivalTime:
    """An instant on the token bucket's clock, exactly: `millis` + `fraction` / `per`
    milliseconds since the epoch (0 <= fraction < per). `per` is the bucket's limit when the
    instant was computed: a reload may change the limit and not the counter."""

    millis: int
    fraction: int = 0
    per: int = 1

    def in_parts_of(self, limit: int) -> ArrivalTime:
        """This instant in 1/limit ms: the same one while the limit is the one it was counted
        with, else rounded up to the millisecond (never earlier: never more lenient)."""
        if self.per == limit:
            return self
        return ArrivalTime(self.millis + (1 if self.fraction else 0), 0, limit)


def bucket_millis(seconds: float) -> int:
    """`now` on the token bucket's clock: whole milliseconds, rounded down so that the clock
    never runs ahead of time."""
    return math.floor(seconds * 1000)


def bucket_window_millis(window_s: float) -> int:
    # Counter names already tell windows apart by whole milliseconds (`Limit.counter_tag`).
    return max(1, round(window_s * 1000))


def emission(hits: int, limit: int, window_ms: int) -> tuple[int, int]:
    """The time `hits` tokens take to come back (hits * window / limit) as whole milliseconds
    and a remainder in 1/limit ms. More than limit + 1 hits meet the same rejection, so they
    count as limit + 1: every value stays an exact integer in Lua's doubles."""
    return divmod(min(hits, limit + 1) * window_ms, limit)


def bucket_ttl_ms(tat: ArrivalTime, now_ms: int) -> int:
    """How long a stored arrival time matters: until the bucket is full again, plus a second
    of slack (expiry only collects garbage; an arrival time in the past means a full bucket)."""
    return tat.millis - now_ms + (1 if tat.fraction else 0) + 1000


def _tokens_left(tat: ArrivalTime, limit: int, window_ms: int, now_ms: int) -> int:
    # floor((window - (tat - now)) / interval) = floor((room * limit - fraction) / window),
    # in doubles as the Lua script computes it: float(int) rounds the exact product as a
    # double multiplication does. Exact while room * limit < 2^53 (any limit per second or
    # minute; up to 2.5e9 an hour, 1e8 a day, 285,000 a year); beyond, `remaining` may be
    # one off, while the decision stays exact.
    room = window_ms - (tat.millis - now_ms)
    return max(0, math.floor((float(room * limit) - tat.fraction) / window_ms))


def token_bucket(
    tat: ArrivalTime | None, hits: int, limit: int, window_ms: int, now_ms: int
) -> tuple[ArrivalTime | None, Verdict]:
    """GCRA. `tat` is when the bucket will be full again (None: it is full)."""
    if limit <= 0:
        return tat, Verdict(hits == 0, 0, window_ms / 1000)
    if tat is not None and tat.millis >= now_ms:  # else it is past (a fraction is < 1 ms)
        base = tat.in_parts_of(limit)
    else:
        base = ArrivalTime(now_ms, 0, limit)  # a full bucket
    whole, part = emission(hits, limit, window_ms)
    carry, fraction = divmod(base.fraction + part, limit)
    new_tat = ArrivalTime(base.millis + whole + carry, fraction, limit)
    # How far the new arrival time lies beyond the burst tolerance (now + window).
    beyond = new_tat.millis - window_ms - now_ms
    if beyond < 0 or (beyond == 0 and fraction == 0):
        remaining = _tokens_left(new_tat, limit, window_ms, now_ms)
        reset_after = (new_tat.millis - now_ms + fraction / limit) / 1000
        return (new_tat if hits > 0 else tat), Verdict(True, remaining, reset_after)
    remaining = _tokens_left(base, limit, window_ms, now_ms)
    return tat, Verdict(False, remaining, (beyond + fraction / limit) / 1000)


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
