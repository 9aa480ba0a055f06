"""The share arithmetic of the quota service: shares never add up to more than the limit,
every active Envoy gets one, and the token bucket Envoy enforces never admits more."""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from authz_service.ratelimit.quota_shares import (
    UNKNOWN_DEMAND,
    TokenBucketShare,
    demand_rate,
    fair_shares,
    token_bucket,
)

limits = st.integers(min_value=1, max_value=10_000_000)
windows = st.sampled_from([1.0, 2.5, 30.0, 60.0, 3600.0, 86400.0]) | st.floats(0.05, 100_000)
min_shares = st.floats(min_value=0.001, max_value=1.0)
demand_maps = st.dictionaries(
    st.text(min_size=1, max_size=8),
    st.floats(min_value=0, max_value=1e7, allow_nan=False) | st.just(0.0) | st.just(-1.0),
    min_size=1,
    max_size=50,
)


@given(limits, demand_maps, min_shares)
def test_shares_never_sum_above_the_limit(limit: int, demands: dict[str, float], m: float) -> None:
    shares = fair_shares(limit, demands, m)
    assert sum(shares.values()) <= limit


@given(limits, demand_maps, min_shares)
def test_every_active_envoy_gets_a_share(limit: int, demands: dict[str, float], m: float) -> None:
    shares = fair_shares(limit, demands, m)
    assert set(shares) == set(demands)
    assert all(share > 0 for share in shares.values())
    # The guaranteed part: a fraction `m` of an equal split, however little it asked for.
    floor = Fraction(limit) * Fraction(m).limit_denominator(10**9) / len(demands)
    assert all(share >= floor for share in shares.values())


@given(limits, demand_maps, min_shares, windows)
def test_token_buckets_of_all_shares_admit_at_most_the_limit(
    limit: int, demands: dict[str, float], m: float, window: float
) -> None:
    buckets = [token_bucket(share, window) for share in fair_shares(limit, demands, m).values()]
    assert all(bucket is not None for bucket in buckets)
    rate = sum(Fraction(b.tokens_per_fill, b.fill_interval_s) for b in buckets if b is not None)
    assert rate <= Fraction(limit) / Fraction(window)


@given(st.floats(min_value=1e-6, max_value=1e9), windows)
def test_a_token_bucket_is_what_envoy_can_enforce(share: float, window: float) -> None:
    bucket = token_bucket(share, window)
    assert bucket is not None
    # Whole seconds (a sub-second fill means no limit in Envoy 1.40), whole tokens, >= 1.
    assert isinstance(bucket.fill_interval_s, int) and bucket.fill_interval_s >= 1
    assert bucket.tokens_per_fill >= 1 and bucket.max_tokens >= 1
    assert Fraction(bucket.tokens_per_fill, bucket.fill_interval_s) <= Fraction(share) / Fraction(
        window
    )


def test_demand_splits_the_rest_and_the_minimum_is_kept() -> None:
    shares = fair_shares(100, {"a": 90.0, "b": 10.0}, 0.1)
    # 5 each guaranteed, 90 split 81/9.
    assert shares["a"] == pytest.approx(86)
    assert shares["b"] == pytest.approx(14)


def test_without_demand_the_limit_is_split_equally() -> None:
    assert fair_shares(30, {"a": 0.0, "b": 0.0, "c": 0.0}, 0.1) == pytest.approx(
        {"a": 10, "b": 10, "c": 10}
    )


def test_a_lone_envoy_gets_the_whole_limit() -> None:
    assert fair_shares(50, {"a": 3.0}, 0.1)["a"] == pytest.approx(50)


def test_a_limit_per_second_becomes_its_share_per_second() -> None:
    assert token_bucket(10, 1.0) == TokenBucketShare(10, 10, 1)


def test_a_share_of_a_minute_refills_over_the_minute() -> None:
    assert token_bucket(300, 60.0) == TokenBucketShare(300, 300, 60)


def test_a_share_under_one_request_per_window_is_one_token_every_few_windows() -> None:
    # 0.5 requests a minute: one every two minutes.
    assert token_bucket(0.5, 60.0) == TokenBucketShare(1, 1, 120)


def test_a_fractional_share_is_rounded_down() -> None:
    bucket = token_bucket(3.9, 1.0)
    assert bucket == TokenBucketShare(3, 3, 1)


def test_a_sub_second_window_is_refilled_per_whole_second() -> None:
    # 5 per 0.5 s = 10 per second; Envoy cannot refill more often than once a second.
    assert token_bucket(5, 0.5) == TokenBucketShare(5, 10, 1)


def test_no_share_is_no_bucket() -> None:
    assert token_bucket(0, 1.0) is None
    assert fair_shares(0, {"a": 1.0}, 0.1) == {"a": 0.0}


def test_demand_counts_denied_requests_and_is_unknown_in_a_first_report() -> None:
    assert demand_rate(40, 10, 5) == 10
    assert demand_rate(3, 0, 0.5) == 3  # whole seconds at least
    assert demand_rate(1, 0, 0) == UNKNOWN_DEMAND


def test_a_new_envoy_of_unknown_demand_gets_an_average_share_at_once() -> None:
    shares = fair_shares(100, {"busy": 80.0, "new": UNKNOWN_DEMAND}, 0.1)
    assert shares["new"] == pytest.approx(50)
    assert fair_shares(100, {"a": UNKNOWN_DEMAND, "b": UNKNOWN_DEMAND}, 0.1)["a"] == 50
