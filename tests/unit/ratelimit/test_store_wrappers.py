"""Circuit breaker, bounded store calls and the local over-limit cache."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from authz_service.ratelimit.algorithms import Verdict
from authz_service.ratelimit.circuit import BreakerState, CircuitBreaker
from authz_service.ratelimit.factory import store_layers
from authz_service.ratelimit.local_cache import CachingStore, OverLimitCache
from authz_service.ratelimit.memory_store import MemoryStore
from authz_service.ratelimit.resilient_store import ResilientStore
from authz_service.ratelimit.store import Hit, QuotaStore, StoreUnavailable
from authz_service.ratelimit.store_chain import compose
from authz_service.schema import RateLimitSettings


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
        self.ended = 0  # calls given up on (timed out or cancelled)
        self.one_ended = asyncio.Event()

    async def apply(self, hits: Sequence[Hit], now: float) -> list[Verdict]:
        self.calls += 1
        try:
            await asyncio.sleep(3600)
        finally:
            self.ended += 1
            self.one_ended.set()
        return []

    async def reset(self, hits: Sequence[Hit], now: float) -> None:
        return None

    async def close(self) -> None:
        return None

    def stats(self) -> dict[str, float]:
        return {}


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


# -- the Redis chain as the factory builds it: the breaker counts round trips ----------------


def redis_chain(inner: QuotaStore, threshold: int) -> QuotaStore:
    """build_store's Redis chain (timeout and breaker, batching) around `inner`, not Redis."""
    settings = RateLimitSettings.model_validate(
        {
            "store": "redis",
            "redis": {"timeout_ms": 20},
            "circuit_breaker": {"failure_threshold": threshold, "open_for": "60s"},
            "local_over_limit_cache": False,
        }
    )
    return compose(inner, store_layers(settings))


def breaker_open(store: QuotaStore) -> bool:
    return store.stats()["breaker_open"] == 1.0


async def round_trips_ended(inner: HangingStore, count: int) -> None:
    """Wait until `count` round trips have ended: callers can give up before theirs does."""
    async with asyncio.timeout(2.0):  # a round trip nobody bounds never ends: fail, not hang
        while inner.ended < count:
            inner.one_ended.clear()
            await inner.one_ended.wait()


async def test_one_slow_round_trip_shared_by_five_callers_is_one_breaker_failure() -> None:
    inner = HangingStore()
    store = redis_chain(inner, threshold=3)
    first = asyncio.create_task(store.apply([HIT], 0.0))
    await asyncio.sleep(0.01)  # its round trip is half way: the next five queue and share one

    results = await asyncio.gather(
        first, *(store.apply([HIT], 0.0) for _ in range(5)), return_exceptions=True
    )
    await round_trips_ended(inner, 2)

    assert all(isinstance(result, StoreUnavailable) for result in results), results
    assert inner.calls == 2  # two round trips...
    assert not breaker_open(store)  # ...are two failures, below the threshold of 3


async def test_consecutive_failed_round_trips_open_the_breaker() -> None:
    inner = HangingStore()
    store = redis_chain(inner, threshold=2)
    for count in (1, 2):
        with pytest.raises(StoreUnavailable, match="timed out"):
            await store.apply([HIT], 0.0)
        await round_trips_ended(inner, count)
    assert breaker_open(store)
    with pytest.raises(StoreUnavailable, match="circuit breaker open"):
        await store.apply([HIT], 0.0)
    assert inner.calls == 2


async def test_a_caller_queued_behind_a_slow_round_trip_still_answers_within_the_timeout() -> None:
    inner = HangingStore()
    store = redis_chain(inner, threshold=5)
    first = asyncio.create_task(store.apply([HIT], 0.0))
    await asyncio.sleep(0.015)  # the first round trip is 15 ms into its 20 ms
    started = asyncio.get_running_loop().time()
    with pytest.raises(StoreUnavailable):
        await store.apply([HIT], 0.0)
    waited = asyncio.get_running_loop().time() - started
    await asyncio.gather(first, return_exceptions=True)
    assert waited < 0.035  # its own bound (20 ms) plus scheduling, not two round trips (40 ms)


async def test_callers_that_gave_up_while_queued_cost_no_round_trip() -> None:
    inner = HangingStore()
    store = redis_chain(inner, threshold=5)
    first = asyncio.create_task(store.apply([HIT], 0.0))
    await asyncio.sleep(0)
    queued = [asyncio.create_task(store.apply([HIT], 0.0)) for _ in range(3)]
    await asyncio.sleep(0)
    for call in queued:
        call.cancel()
    await asyncio.gather(first, *queued, return_exceptions=True)
    await round_trips_ended(inner, 1)
    assert inner.calls == 1
