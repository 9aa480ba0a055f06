"""Build the store and the limiter from settings: `store: memory | redis` picks the backend."""

from __future__ import annotations

from authz_service.ratelimit.batching_store import BatchingStore
from authz_service.ratelimit.circuit import CircuitBreaker
from authz_service.ratelimit.limiter import RateLimiter
from authz_service.ratelimit.local_cache import CachingStore, OverLimitCache
from authz_service.ratelimit.memory_store import MemoryStore
from authz_service.ratelimit.outages import StoreOutages
from authz_service.ratelimit.resilient_store import ResilientStore
from authz_service.ratelimit.rules import RateLimitRules
from authz_service.ratelimit.store import QuotaStore
from authz_service.schema import RateLimitSettings


def build_store(settings: RateLimitSettings) -> QuotaStore:
    """Never connects: Redis being down at start must not stop the service."""
    store: QuotaStore
    if settings.store == "redis":
        from authz_service.ratelimit.redis_store import RedisStore  # only when configured

        breaker = CircuitBreaker(
            settings.circuit_breaker.failure_threshold, settings.circuit_breaker.open_for
        )
        timeout_s = settings.redis.timeout_ms / 1000
        # Concurrent RPCs share a round trip (one script run applies all their hits). The
        # breaker sits inside the batching, so it counts round trips, not the callers that
        # shared one; every caller's wait stays bounded by the same timeout.
        resilient = ResilientStore(RedisStore.from_settings(settings.redis), timeout_s, breaker)
        store = BatchingStore(resilient, timeout_s=timeout_s)
    else:
        store = MemoryStore(settings.redis.key_prefix, settings.memory_max_keys)
    if settings.local_over_limit_cache:
        store = CachingStore(store, OverLimitCache(settings.local_cache_max_entries))
    return store


def build_limiter(
    settings: RateLimitSettings,
    config: RateLimitRules,
    store: QuotaStore | None = None,
    outages: StoreOutages | None = None,
) -> RateLimiter:
    return RateLimiter(
        config,
        store if store is not None else build_store(settings),
        shadow_mode=settings.shadow_mode,
        failure_mode=settings.failure_mode,
        brute_force=settings.brute_force,
        outages=outages,
    )
