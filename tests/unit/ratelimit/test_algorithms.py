"""The limit math, with the clock passed in: no sleeping."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from authz_service.ratelimit import algorithms
from authz_service.ratelimit.algorithms import ArrivalTime, Verdict, WindowPosition


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
    tat, now_ms = None, 1_000_000
    results = []
    for _ in range(6):
        tat, verdict = algorithms.token_bucket(tat, 1, 5, 10_000, now_ms)
        results.append(verdict.allowed)
    assert results == [True] * 5 + [False]
    _, later = algorithms.token_bucket(tat, 1, 5, 10_000, now_ms + 2000)  # one token per 2 s
    assert later.allowed and later.remaining == 0


def test_token_bucket_admits_its_whole_burst_at_an_epoch_sized_instant() -> None:
    tat, now_ms, admitted = None, algorithms.bucket_millis(1_700_000_040.0), 0
    for _ in range(26):
        tat, verdict = algorithms.token_bucket(tat, 1, 25, 60_000, now_ms)
        admitted += verdict.allowed
    assert admitted == 25
    assert tat == ArrivalTime(now_ms + 60_000, 0, 25)


def test_token_bucket_arrival_time_is_exact_when_the_interval_is_no_whole_millisecond() -> None:
    # 7 a minute: a token every 8571 + 3/7 ms. Seven of them add up to the minute exactly.
    tat: ArrivalTime | None = None
    now_ms = 1_700_000_040_000
    for _ in range(3):
        tat, _ = algorithms.token_bucket(tat, 1, 7, 60_000, now_ms)
    assert tat == ArrivalTime(now_ms + 25_714, 2, 7)  # 3 * 60000 / 7 = 25714 + 2/7
    tat, verdict = algorithms.token_bucket(tat, 4, 7, 60_000, now_ms)
    assert (tat, verdict) == (ArrivalTime(now_ms + 60_000, 0, 7), Verdict(True, 0, 60.0))


def test_token_bucket_counted_with_another_limit_resumes_from_the_next_millisecond() -> None:
    # A reload turned 7 a minute into 5: 2/7 ms cannot be read as 2/5 ms (later) nor dropped
    # (earlier, more lenient); the arrival time is taken rounded up to the millisecond.
    now_ms = 1_700_000_040_000
    tat, verdict = algorithms.token_bucket(ArrivalTime(now_ms + 25_714, 2, 7), 1, 5, 60_000, now_ms)
    assert tat == ArrivalTime(now_ms + 25_715 + 12_000, 0, 5)
    assert verdict == Verdict(True, 1, 37.715)


def test_token_bucket_rejection_reports_the_wait_for_the_next_token() -> None:
    tat: ArrivalTime | None = None
    for _ in range(5):
        tat, _ = algorithms.token_bucket(tat, 1, 5, 10_000, 1_000_000)
    _, verdict = algorithms.token_bucket(tat, 1, 5, 10_000, 1_000_500)
    assert verdict == Verdict(False, 0, 1.5)


def test_token_bucket_with_a_zero_limit_rejects_every_hit() -> None:
    assert algorithms.token_bucket(None, 1, 0, 10_000, 5000)[1].allowed is False


def test_token_bucket_clock_rounds_down_to_the_millisecond() -> None:
    assert algorithms.bucket_millis(1_700_000_000.0129) == 1_700_000_000_012
    assert algorithms.bucket_window_millis(0.0001) == 1  # never a zero-length window


def test_emission_of_more_hits_than_can_ever_fit_is_capped_at_one_more_than_the_burst() -> None:
    assert algorithms.emission(2**64, 3, 1000) == algorithms.emission(4, 3, 1000) == (1333, 1)


@given(
    st.lists(st.tuples(st.integers(0, 3000), st.integers(0, 3)), min_size=1, max_size=60),
    st.integers(1_000_000_000_000, 4_000_000_000_000),
)
def test_token_bucket_never_admits_more_than_burst_plus_refill(
    steps: list[tuple[int, int]], start_ms: int
) -> None:
    # 4 per 8 s: a burst of 4 and a token every 2 s.
    tat, now_ms, admitted = None, start_ms, 0
    for gap_ms, hits in steps:
        now_ms += gap_ms
        tat, verdict = algorithms.token_bucket(tat, hits, 4, 8000, now_ms)
        admitted += hits if verdict.allowed else 0
    assert admitted * 2000 <= 4 * 2000 + (now_ms - start_ms)


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
