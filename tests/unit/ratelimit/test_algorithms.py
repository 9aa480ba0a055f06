"""The limit math, with the clock passed in: no sleeping."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from authz_service.ratelimit import algorithms
from authz_service.ratelimit.algorithms import Verdict, WindowPosition


def test_window_position_aligns_windows_to_the_epoch() -> None:
    assert WindowPosition.at(125.0, 60.0) == WindowPosition(2, 5.0)


def test_fixed_window_admits_up_to_the_limit_then_rejects() -> None:
    count, verdicts = 0, []
    for _ in range(4):
        count, verdict = algorithms.fixed_window(count, 1, 3, True, 10.0, 60.0)
        verdicts.append(verdict)
    assert [v.allowed for v in verdicts] == [True, True, True, False]
    assert [v.remaining for v in verdicts] == [2, 1, 0, 0]
    assert verdicts[0].reset_after == 50.0


def test_fixed_window_charges_rejected_requests_by_default() -> None:
    count, _ = algorithms.fixed_window(3, 1, 3, True, 0.0, 60.0)
    assert count == 4


def test_fixed_window_without_charging_rejected_keeps_the_count() -> None:
    count, verdict = algorithms.fixed_window(2, 5, 3, False, 0.0, 60.0)
    assert (count, verdict.allowed, verdict.remaining) == (2, False, 1)


def test_fixed_window_check_only_hit_counts_nothing() -> None:
    count, verdict = algorithms.fixed_window(3, 0, 3, True, 0.0, 60.0)
    assert (count, verdict.allowed, verdict.remaining) == (3, True, 0)


@given(st.lists(st.integers(min_value=0, max_value=5), max_size=50), st.integers(0, 20))
def test_fixed_window_never_admits_more_hits_than_the_limit(hits: list[int], limit: int) -> None:
    count, admitted = 0, 0
    for n in hits:
        count, verdict = algorithms.fixed_window(count, n, limit, True, 0.0, 1.0)
        admitted += n if verdict.allowed else 0
    assert admitted <= limit


def test_sliding_window_weights_the_previous_window_by_what_is_left_of_it() -> None:
    # 10 in the previous window, a quarter into this one: estimate 7.5, so 2 more fit.
    current, verdicts = 0, []
    for _ in range(3):
        current, verdict = algorithms.sliding_window(10, current, 1, 10, True, 15.0, 60.0)
        verdicts.append(verdict)
    assert [v.allowed for v in verdicts] == [True, True, False]
    assert verdicts[0].remaining == 1


def test_sliding_window_rejection_says_when_the_previous_window_has_decayed_enough() -> None:
    _, verdict = algorithms.sliding_window(10, 0, 1, 10, False, 0.0, 60.0)
    # 10 * (1 - t/60) + 1 <= 10 first holds at t = 6 s.
    assert not verdict.allowed
    assert abs(verdict.reset_after - 6.0) < 1e-9


def test_sliding_window_stops_the_double_burst_a_fixed_window_allows_at_the_edge() -> None:
    # 10 at the end of one window; just after the edge a fixed window would admit 10 more.
    _, verdict = algorithms.sliding_window(10, 0, 1, 10, True, 0.5, 60.0)
    assert not verdict.allowed


def test_token_bucket_allows_a_burst_of_the_limit_then_refills_one_per_interval() -> None:
    tat, now = None, 1000.0
    results = []
    for _ in range(6):
        tat, verdict = algorithms.token_bucket(tat, 1, 5, 10.0, now)
        results.append(verdict.allowed)
    assert results == [True] * 5 + [False]
    _, later = algorithms.token_bucket(tat, 1, 5, 10.0, now + 2.0)  # one token per 2 s
    assert later.allowed and later.remaining == 0


@pytest.mark.xfail(
    strict=True,
    reason="known bug: the theoretical arrival time gains one interval per hit, each sum "
    "rounded at the epoch timestamp's precision (~2.4e-7 s), beyond EPSILON after a few "
    "dozen hits: 25 per minute admits a burst of 24",
)
def test_token_bucket_admits_its_whole_burst_at_an_epoch_sized_instant() -> None:
    tat, now, admitted = None, 1_700_000_040.0, 0
    for _ in range(25):
        tat, verdict = algorithms.token_bucket(tat, 1, 25, 60.0, now)
        admitted += verdict.allowed
    assert admitted == 25


def test_token_bucket_rejection_reports_the_wait_for_the_next_token() -> None:
    tat: float | None = None
    for _ in range(5):
        tat, _ = algorithms.token_bucket(tat, 1, 5, 10.0, 1000.0)
    _, verdict = algorithms.token_bucket(tat, 1, 5, 10.0, 1000.5)
    assert verdict == Verdict(False, 0, 1.5)


def test_token_bucket_with_a_zero_limit_rejects_every_hit() -> None:
    assert algorithms.token_bucket(None, 1, 0, 10.0, 5.0)[1].allowed is False


@given(st.lists(st.floats(min_value=0, max_value=3), min_size=1, max_size=60))
def test_token_bucket_never_admits_more_than_burst_plus_refill(gaps: list[float]) -> None:
    tat, now, admitted = None, 1_000_000.0, 0
    start = now
    for gap in gaps:
        now += gap
        tat, verdict = algorithms.token_bucket(tat, 1, 4, 8.0, now)
        admitted += verdict.allowed
    assert admitted <= 4 + (now - start) / 2.0 + 1e-6


def test_lockout_locks_after_max_failures_for_the_lockout_time() -> None:
    failures, locked = 0, None
    for _ in range(3):
        failures, locked, verdict = algorithms.lockout(failures, locked, 1, 3, 300.0, 0, 60, 100)
    assert verdict == Verdict(False, 0, 300.0)
    _, _, later = algorithms.lockout(failures, locked, 0, 3, 300.0, 0, 60, 399.0)
    assert later.allowed is False
    _, _, after = algorithms.lockout(failures, locked, 0, 3, 300.0, 0, 60, 400.0)
    assert after.allowed is True


def test_lockout_check_only_reports_failures_left() -> None:
    _, _, verdict = algorithms.lockout(1, None, 0, 3, 300.0, 10.0, 60.0, 100.0)
    assert verdict == Verdict(True, 2, 50.0)
