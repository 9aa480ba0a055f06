"""Saturation figures of a quota store chain, for the metrics collector (read at scrape time)."""

from __future__ import annotations

from authz_service.ratelimit.batching_store import BatchingStore
from authz_service.ratelimit.circuit import BreakerState
from authz_service.ratelimit.local_cache import CachingStore
from authz_service.ratelimit.memory_store import MemoryStore
from authz_service.ratelimit.resilient_store import ResilientStore
from authz_service.ratelimit.store import QuotaStore


def store_stats(store: QuotaStore | None) -> list[tuple[str, float]]:
    """(name, value) pairs: breaker state, local over-limit cache size, Redis pool use,
    memory store size and cap."""
    stats: list[tuple[str, float]] = []
    current: object = store
    while current is not None:
        if isinstance(current, CachingStore):
            stats.append(("local_over_limit_entries", float(len(current.cache))))
            current = current.inner
        elif isinstance(current, BatchingStore):
            stats.append(("redis_round_trips", float(current.round_trips)))
            current = current.inner
        elif isinstance(current, MemoryStore):
            stats.append(("memory_keys", float(len(current))))
            stats.append(("memory_max_keys", float(current.max_keys)))
            current = None
        elif isinstance(current, ResilientStore):
            stats.append(("breaker_open", float(current.breaker.state is BreakerState.OPEN)))
            current = current.inner
        else:
            client = getattr(current, "client", None)
            pool = getattr(client, "connection_pool", None)
            in_use = getattr(pool, "_in_use_connections", None)
            if in_use is not None:
                stats.append(("redis_pool_in_use", float(len(in_use))))
                stats.append(("redis_pool_max", float(getattr(pool, "max_connections", 0) or 0)))
            current = None
    return stats
