"""Bounded work per call in the in-process stores: pinned by counting, not by wall clock.

Each test hands the store a clock value (`now`, or a cache entry's `until`) that counts the
comparisons made with it. A scan of the whole table shows up as one comparison per key.
"""

from __future__ import annotations

from typing import Any

import pytest

from authz_service.ratelimit.local_cache import OverLimitCache
from authz_service.ratelimit.memory_store import MemoryStore
from authz_service.ratelimit.store import Hit, StoreUnavailable


class Counter:
    comparisons = 0


class CountingFloat(float):
    """A float that counts every ordering comparison it takes part in."""

    def _count(self, op: Any, other: Any) -> Any:
        Counter.comparisons += 1
        return op(float(self), other)

    def __lt__(self, other: Any) -> Any:
        return self._count(float.__lt__, other)

    def __le__(self, other: Any) -> Any:
        return self._count(float.__le__, other)

    def __gt__(self, other: Any) -> Any:
        return self._count(float.__gt__, other)

    def __ge__(self, other: Any) -> Any:
        return self._count(float.__ge__, other)


def counted(call: Any) -> int:
    before = Counter.comparisons
    call()
    return Counter.comparisons - before


# -- the local over-limit cache --------------------------------------------------------------


def test_inserting_into_a_full_over_limit_cache_does_constant_work() -> None:
    size = 20_000
    cache = OverLimitCache(max_entries=size)
    for index in range(size):  # full of live entries, each until t=1000
        cache.remember(f"k{index}", CountingFloat(1000.0), 0.0)

    work = [
        counted(lambda i=i: cache.remember(f"new{i}", CountingFloat(1000.0), 1.0))
        for i in range(200)
    ]

    assert max(work) <= 4, max(work)  # not one comparison per entry (20,000)
    assert len(cache) == size


def test_a_full_over_limit_cache_evicts_the_least_recently_remembered_key() -> None:
    cache = OverLimitCache(max_entries=3)
    for key in ("a", "b", "c"):
        cache.remember(key, 100.0, 0.0)
    cache.remember("a", 100.0, 0.0)  # remembered again: now the newest
    cache.remember("d", 100.0, 0.0)
    assert cache.blocked_until("b", 0.0) is None  # b was the oldest: evicted (safe: the
    assert cache.blocked_until("a", 0.0) == 100.0  # store answers b's next request)
    assert cache.blocked_until("d", 0.0) == 100.0


# -- the memory store ------------------------------------------------------------------------


def hit(key: str, limit: int = 10, window: float = 60.0) -> Hit:
    return Hit("{d|k=" + key + "}|f", "fixed_window", limit, window, 1)


async def apply_counted(store: MemoryStore, hits: list[Hit], now: float) -> int:
    before = Counter.comparisons
    await store.apply(hits, CountingFloat(now))
    return Counter.comparisons - before


async def test_every_memory_store_call_does_bounded_sweep_work() -> None:
    store = MemoryStore()
    keys = 20_000
    await store.apply([hit(f"old{i}", window=1.0) for i in range(keys)], 0.0)

    # Long after they expired: the next 5,000 calls, one new key each.
    work = [await apply_counted(store, [hit(f"new{i}")], 100.0 + i) for i in range(5_000)]

    # A few comparisons for the hit itself plus a bounded sweep step, never a full scan.
    assert max(work) <= 100, max(work)


async def test_expired_keys_are_swept_incrementally() -> None:
    store = MemoryStore()
    await store.apply([hit(f"old{i}", window=1.0) for i in range(2_000)], 0.0)
    for i in range(2_000):
        await store.apply([hit("live")], 100.0 + i * 0.001)
    assert store.stats()["memory_keys"] <= 10  # the expired keys went, a step at a time


async def test_a_full_memory_store_refuses_new_keys_and_keeps_counting_known_ones() -> None:
    store = MemoryStore(max_keys=3)
    for key in ("a", "b", "c"):
        await store.apply([hit(key, limit=2)], 0.0)

    with pytest.raises(StoreUnavailable, match="full"):
        await store.apply([hit("d")], 1.0)
    # Known keys still count: over-admission is impossible, the new key meets failure_mode.
    assert [v.allowed for v in await store.apply([hit("a", limit=2)] * 2, 1.0)] == [True, False]
    assert store.stats()["memory_keys"] == 3


async def test_a_full_memory_store_makes_room_by_dropping_expired_keys() -> None:
    store = MemoryStore(max_keys=3)
    for key in ("a", "b", "c"):
        await store.apply([hit(key, window=1.0)], 0.0)
    assert (await store.apply([hit("d")], 10.0))[0].allowed
    assert store.stats()["memory_keys"] <= 3
