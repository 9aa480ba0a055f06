"""Build the store and the limiter from settings: `store: memory | redis` picks the backend,
`store_layers` declares the wrappers around it (their order is explained in store_chain.py)."""

from __future__ import annotations

from authz_service.ratelimit.limiter import RateLimiter
from authz_service.ratelimit.memory_store import MemoryStore
from authz_service.ratelimit.outages import StoreOutages
from authz_service.ratelimit.rules import RateLimitRules
from authz_service.ratelimit.store import QuotaStore
from authz_service.ratelimit.store_chain import (
    Batching,
    Breaker,
    LocalOverLimitCache,
    StoreLayer,
    compose,
)
from authz_service.schema import RateLimitSettings


def build_store(settings: RateLimitSettings) -> QuotaStore:
    """Never connects: Redis being down at start must not stop the service."""
    return compose(store_backend(settings), store_layers(settings))


def store_backend(settings: RateLimitSettings) -> QuotaStore:
    if settings.store == "redis":  # standalone or cluster: `redis.cluster`
        from authz_service.ratelimit.redis_store import RedisStore  # only when configured

        return RedisStore.from_settings(settings.redis)
    return MemoryStore(settings.redis.key_prefix, settings.memory_max_keys)


def store_layers(settings: RateLimitSettings) -> list[StoreLayer]:
    """The wrappers around the backend, innermost first."""
    layers: list[StoreLayer] = []
    if settings.store == "redis":
        # A network store: bound and break, then let concurrent callers share round trips
        # under the same timeout. The memory store answers without awaiting: neither applies.
        timeout_s = settings.redis.timeout_ms / 1000
        breaker = settings.circuit_breaker
        layers += [
            Breaker(timeout_s, breaker.failure_threshold, breaker.open_for),
            Batching(timeout_s),
        ]
    if settings.local_over_limit_cache:
        layers.append(LocalOverLimitCache(settings.local_cache_max_entries))
    return layers


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
