"""The quota store chain: a backend wrapped in layers, declared as a list, innermost first.

    compose(redis, [Breaker(...), Batching(...), LocalOverLimitCache(...)])
      == CachingStore(BatchingStore(ResilientStore(redis)))

Every layer is a QuotaStore around the one before it. `factory.store_layers` declares the
list for each configuration; the order is this one, and here is why:

1. `Breaker` (timeout + circuit breaker, `ResilientStore`) right around the backend: it bounds
   each call to the store and counts the store's failures, one per round trip.
2. `Batching` (`BatchingStore`) outside it: concurrent callers share the next round trip, so
   the breaker counts round trips, not the callers that shared one ("consecutive store
   failures"), and each caller's wait, queueing included, keeps its own bound.
3. `LocalOverLimitCache` (`CachingStore`) outermost: a key known to be over its limit is
   answered in-process before it can queue for a batch or reach the store at all.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from authz_service.ratelimit.batching_store import BatchingStore
from authz_service.ratelimit.circuit import CircuitBreaker
from authz_service.ratelimit.local_cache import CachingStore, OverLimitCache
from authz_service.ratelimit.resilient_store import ResilientStore
from authz_service.ratelimit.store import QuotaStore


class StoreLayer(Protocol):
    def wrap(self, inner: QuotaStore) -> QuotaStore: ...


@dataclass(frozen=True, slots=True)
class Breaker:
    """Bound every call in time; stop calling a store that keeps failing."""

    timeout_s: float
    failure_threshold: int
    open_for_s: float

    def wrap(self, inner: QuotaStore) -> QuotaStore:
        breaker = CircuitBreaker(self.failure_threshold, self.open_for_s)
        return ResilientStore(inner, self.timeout_s, breaker)


@dataclass(frozen=True, slots=True)
class Batching:
    """Concurrent calls share one round trip; each caller waits at most `timeout_s`."""

    timeout_s: float
    max_in_flight: int = 1

    def wrap(self, inner: QuotaStore) -> QuotaStore:
        return BatchingStore(inner, self.max_in_flight, self.timeout_s)


@dataclass(frozen=True, slots=True)
class LocalOverLimitCache:
    """Answer keys known to be over their limit in-process until their window ends."""

    max_entries: int

    def wrap(self, inner: QuotaStore) -> QuotaStore:
        return CachingStore(inner, OverLimitCache(self.max_entries))


def compose(backend: QuotaStore, layers: Sequence[StoreLayer]) -> QuotaStore:
    """`backend` wrapped in `layers`, the first innermost: compose(s, [a, b]) is b(a(s))."""
    store = backend
    for layer in layers:
        store = layer.wrap(store)
    return store
