"""Global rate limiting: envoyproxy/ratelimit-compatible config, algorithms, stores, decisions.

settings (RateLimitSettings) --factory--> RateLimiter(config, store)
config.py      YAML documents -> RateLimitConfig (pure)
algorithms.py  the limit math, clock passed in (pure)
store.py       QuotaStore protocol; memory_store / redis_store (+ lua.py) implement it;
               resilient_store (timeout, breaker) and local_cache wrap either
limiter.py     RateLimiter: should_rate_limit, check_descriptors, brute-force lockout
response.py    X-RateLimit headers and the JSON 429 body
"""

from authz_service.ratelimit.algorithms import Verdict
from authz_service.ratelimit.circuit import BreakerState, CircuitBreaker
from authz_service.ratelimit.config import (
    Limit,
    Match,
    RateLimitConfig,
    load_rate_limit_config,
    parse_domain_document,
)
from authz_service.ratelimit.factory import build_limiter, build_store, load_config
from authz_service.ratelimit.limiter import RateLimiter
from authz_service.ratelimit.local_cache import CachingStore, OverLimitCache
from authz_service.ratelimit.memory_store import MemoryStore
from authz_service.ratelimit.model import (
    Code,
    CurrentLimit,
    Descriptor,
    DescriptorStatus,
    LimitOverride,
    LockoutState,
    RateLimitRequestData,
    RateLimitResult,
)
from authz_service.ratelimit.resilient_store import ResilientStore
from authz_service.ratelimit.response import over_limit_body, rate_limit_headers
from authz_service.ratelimit.settings import (
    BruteForceSettings,
    CircuitBreakerSettings,
    RateLimitSettings,
    RedisSettings,
)
from authz_service.ratelimit.store import Hit, QuotaStore, StoreUnavailable

__all__ = [
    "BreakerState",
    "BruteForceSettings",
    "CachingStore",
    "CircuitBreaker",
    "CircuitBreakerSettings",
    "Code",
    "CurrentLimit",
    "Descriptor",
    "DescriptorStatus",
    "Hit",
    "Limit",
    "LimitOverride",
    "LockoutState",
    "Match",
    "MemoryStore",
    "OverLimitCache",
    "QuotaStore",
    "RateLimitConfig",
    "RateLimitRequestData",
    "RateLimitResult",
    "RateLimitSettings",
    "RateLimiter",
    "RedisSettings",
    "ResilientStore",
    "StoreUnavailable",
    "Verdict",
    "build_limiter",
    "build_store",
    "load_config",
    "load_rate_limit_config",
    "over_limit_body",
    "parse_domain_document",
    "rate_limit_headers",
]
