"""Circuit breaker, bounded store calls and the local over-limit cache."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from authz_service.ratelimit import (
    BreakerState,
    CachingStore,
    CircuitBreaker,
    Hit,
    MemoryStore,
    OverLimitCache,
    ResilientStore,
    StoreUnavailable,
    Verdict,
)


def state(breaker: CircuitBreaker) -> BreakerState:
    return breaker.state  # a call, so mypy does not narrow the property between checks


def test_breaker_opens_after_consecutive_failures_and_probes_after_the_pause() -> None:
    breaker = CircuitBreaker(failure_threshold=2, open_for=5.0)
    breaker.record_failure(0.0)
    assert breaker.allow(0.0)
    breaker.record_failure(1.0)
    assert state(breaker) is BreakerState.OPEN
    assert not breaker.allow(5.9)
    assert breaker.allow(6.0)  # the probe
    assert state(breaker) is BreakerState.HALF_OPEN
    assert not breaker.allow(6.0)  # only one probe at a time


def test_breaker_closes_when_the_probe_succeeds_and_reopens_when_it_fails() -> None:
    breaker = CircuitBreaker(failure_threshold=1, open_for=1.0)
    breaker.record_failure(0.0)
    assert breaker.allow(1.0)
    breaker.record_failure(1.0)
    assert state(breaker) is BreakerState.OPEN and not breaker.allow(1.5)
    assert breaker.allow(2.0)
    breaker.record_success()
    assert state(breaker) is BreakerState.CLOSED and breaker.allow(2.0)


def test_a_success_resets_the_failure_count() -> None:
    breaker = CircuitBreaker(failure_threshold=2, open_for=1.0)
    breaker.record_failure(0.0)
    breaker.record_success()
    breaker.record_failure(0.0)
    assert state(breaker) is BreakerState.CLOSED


class HangingStore:
    def __init__(self) -> None:
        self.calls = 0

    async def apply(self, hits: Sequence[Hit], now: float) -> list[Verdict]:
        self.calls += 1
        await asyncio.sleep(3600)
        return []

    async def reset(self, hits: Sequence[Hit], now: float) -> None:
        return None

    async def close(self) -> None:
        return None


HIT = Hit("{d|k=v}|f1000.0", "fixed_window", 1, 60.0, 1)


async def test_slow_store_fails_within_the_timeout_then_the_breaker_stops_calling_it() -> None:
    inner = HangingStore()
    clock = [0.0]
    store = ResilientStore(inner, 0.02, CircuitBreaker(2, 5.0), clock=lambda: clock[0])
    for _ in range(2):
        with pytest.raises(StoreUnavailable, match="timed out after 20 ms"):
            await store.apply([HIT], 0.0)
    with pytest.raises(StoreUnavailable, match="circuit breaker open"):
        await store.apply([HIT], 0.0)
    assert inner.calls == 2


async def test_resilient_store_recovers_after_the_open_period() -> None:
    clock = [0.0]
    breaker = CircuitBreaker(1, 5.0)
    breaker.record_failure(0.0)
    store = ResilientStore(MemoryStore(), 1.0, breaker, clock=lambda: clock[0])
    with pytest.raises(StoreUnavailable):
        await store.apply([HIT], 0.0)
    clock[0] = 5.0
    assert (await store.apply([HIT], 0.0))[0].allowed
    assert state(breaker) is BreakerState.CLOSED


async def test_cancelled_calls_do_not_count_as_store_failures() -> None:
    inner = HangingStore()
    breaker = CircuitBreaker(2, 5.0)
    store = ResilientStore(inner, 60.0, breaker, clock=lambda: 0.0)
    calls = [asyncio.create_task(store.apply([HIT], 0.0)) for _ in range(5)]
    await asyncio.sleep(0)
    for call in calls:
        call.cancel()
    await asyncio.gather(*calls, return_exceptions=True)
    assert inner.calls == 5
    assert state(breaker) is BreakerState.CLOSED


async def test_a_cancelled_probe_lets_the_next_call_probe() -> None:
    clock = [0.0]
    breaker = CircuitBreaker(1, 5.0)
    breaker.record_failure(0.0)
    clock[0] = 5.0
    hanging = ResilientStore(HangingStore(), 60.0, breaker, clock=lambda: clock[0])
    probe = asyncio.create_task(hanging.apply([HIT], 0.0))
    await asyncio.sleep(0)
    assert state(breaker) is BreakerState.HALF_OPEN
    probe.cancel()
    await asyncio.gather(probe, return_exceptions=True)
    store = ResilientStore(MemoryStore(), 1.0, breaker, clock=lambda: clock[0])
    assert (await store.apply([HIT], 0.0))[0].allowed
    assert state(breaker) is BreakerState.CLOSED


class CountingStore(MemoryStore):
    def __init__(self) -> None:
        super().__init__()
        self.hits_seen = 0

    async def apply(self, hits: Sequence[Hit], now: float) -> list[Verdict]:
        self.hits_seen += len(hits)
        return await super().apply(hits, now)


async def test_over_limit_key_is_answered_locally_until_its_window_ends() -> None:
    inner = CountingStore()
    store = CachingStore(inner, OverLimitCache())
    results = [await store.apply([HIT], 30.0) for _ in range(5)]
    assert [r[0].allowed for r in results] == [True, False, False, False, False]
    assert inner.hits_seen == 2  # the first rejection came from the store, the rest cached
    assert results[-1][0] == Verdict(False, 0, 30.0)
    assert (await store.apply([HIT], 60.0))[0].allowed
    assert inner.hits_seen == 3


async def test_cached_key_does_not_stop_the_other_descriptors_reaching_the_store() -> None:
    inner = CountingStore()
    store = CachingStore(inner, OverLimitCache())
    other = Hit("{d|k=w}|f1000.0", "fixed_window", 10, 60.0, 1)
    await store.apply([HIT], 0.0)
    await store.apply([HIT], 0.0)
    verdicts = await store.apply([HIT, other], 0.0)
    assert [v.allowed for v in verdicts] == [False, True]
    assert inner.hits_seen == 3


async def test_check_only_hits_bypass_the_cache() -> None:
    inner = CountingStore()
    store = CachingStore(inner, OverLimitCache())
    await store.apply([HIT, HIT], 0.0)
    look = Hit(HIT.key, "fixed_window", 1, 60.0, 0)
    await store.apply([look], 0.0)
    assert inner.hits_seen == 3


async def test_reset_also_forgets_the_cached_rejection() -> None:
    store = CachingStore(MemoryStore(), OverLimitCache())
    await store.apply([HIT, HIT], 0.0)
    await store.reset([HIT], 0.0)
    assert (await store.apply([HIT], 0.0))[0].allowed


def test_cache_stays_within_its_size_bound() -> None:
    cache = OverLimitCache(max_entries=2)
    for index in range(5):
        cache.remember(f"k{index}", 100.0, 0.0)
    assert len(cache) == 2
    assert cache.blocked_until("k4", 0.0) == 100.0
