"""Fair shares of one limit among the Envoys that report a bucket, and the token bucket that
enforces a share inside Envoy. Pure arithmetic: no store, no protobuf, no clock.

A limit L per window W is split among the Envoys reporting the bucket recently: each gets
`min_share / n` of L, and the rest is split in proportion to their demand (requests allowed
plus denied per second in their last report; an equal split while nobody has any). An Envoy
whose demand is not known yet (its first report of a bucket covers one request, not a
period) counts as wanting what the others want on average: a new Envoy gets a full share at
once instead of waiting 5 s for its next report. The shares sum to L, and every active Envoy
has one.

Envoy 1.40 enforces a share as a token bucket refilled continuously at tokens_per_fill /
fill_interval, where fill_interval must be whole seconds (a sub-second one means no limit)
and tokens are whole. `token_bucket` rounds down, never up: the rates of all shares sum to at
most L / W. The bucket holds one window's share (at least one token), as a fixed window lets
a client spend its window at once.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction


@dataclass(frozen=True, slots=True)
class TokenBucketShare:
    """What Envoy is told: `max_tokens`, refilled by `tokens_per_fill` every `fill_interval_s`."""

    max_tokens: int
    tokens_per_fill: int
    fill_interval_s: int

    @property
    def rate(self) -> float:
        """Requests per second this bucket admits in the long run."""
        return self.tokens_per_fill / self.fill_interval_s


UNKNOWN_DEMAND = -1.0


def demand_rate(allowed: int, denied: int, elapsed_s: float) -> float:
    """Requests per second an Envoy wanted over its last report, or UNKNOWN_DEMAND for the
    first report of a bucket (Envoy sends it on the bucket's first request, elapsed 0 s)."""
    if elapsed_s <= 0:
        return UNKNOWN_DEMAND
    return (max(0, allowed) + max(0, denied)) / max(1.0, elapsed_s)


def fair_shares(
    limit: float, demands: Mapping[str, float], min_share: float
) -> dict[str, Fraction]:
    """Split `limit` among the Envoys of `demands` (id -> requests per second; a negative one
    is unknown and counts as the mean of the known ones, or 1 if none is known).

    Exact arithmetic (floats summed would add up to a hair over the limit): the shares sum to
    `limit` exactly and each is at least `limit * min_share / n`.
    """
    if not demands or limit <= 0:
        return {envoy: Fraction(0) for envoy in demands}
    count = len(demands)
    whole = Fraction(limit)
    if count == 1:  # the common case (one Envoy per bucket, e.g. per user): all of it
        return {envoy: whole for envoy in demands}
    guaranteed = whole * _exact(min_share) / count
    rest = whole - guaranteed * count
    known = [Fraction(demand) for demand in demands.values() if demand >= 0]
    guess = sum(known, Fraction(0)) / len(known) if known else Fraction(1)
    wanted = {
        envoy: Fraction(demand) if demand >= 0 else guess for envoy, demand in demands.items()
    }
    total = sum(wanted.values(), Fraction(0))
    if total == 0:
        return {envoy: whole / count for envoy in demands}
    return {envoy: guaranteed + rest * demand / total for envoy, demand in wanted.items()}


@functools.lru_cache(maxsize=64)
def _exact(fraction: float) -> Fraction:
    """A setting such as 0.1 means a tenth, not the float nearest to it."""
    return Fraction(fraction).limit_denominator(10**9)


def token_bucket(share: float | Fraction, window_s: float) -> TokenBucketShare | None:
    """The bucket admitting at most `share` requests per `window_s` (None: a share of 0).

    The refill uses whole seconds (Envoy divides by whole seconds) and whole tokens, rounded
    down; a share under one request per window becomes one token every few windows.
    """
    if share <= 0 or window_s <= 0:
        return None
    # Exact arithmetic: a float quotient a hair off would round the wrong way.
    exact_share, window = Fraction(share), Fraction(window_s)
    interval = max(1, math.ceil(window))
    tokens = math.floor(exact_share * interval / window)
    if tokens < 1:
        # One token per `interval` seconds, no faster than the share allows.
        interval = math.ceil(window / exact_share)
        tokens = 1
    return TokenBucketShare(
        max_tokens=max(1, math.floor(share)),
        tokens_per_fill=tokens,
        fill_interval_s=interval,
    )
