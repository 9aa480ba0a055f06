"""Build the quota service's usage store from `rate_limit:` settings: the same backend as the
quota store (`store: memory | redis`), with connections of its own."""

from __future__ import annotations

from authz_service.ratelimit.usage_store import MemoryUsageStore, UsageStore
from authz_service.schema import RateLimitSettings


def build_usage_store(settings: RateLimitSettings) -> UsageStore:
    """Never connects: Redis being down at start must not stop the service."""
    if settings.store == "redis":
        from authz_service.ratelimit.redis_usage_store import RedisUsageStore  # only if used

        return RedisUsageStore.from_settings(settings.redis)
    return MemoryUsageStore(settings.memory_max_keys)
