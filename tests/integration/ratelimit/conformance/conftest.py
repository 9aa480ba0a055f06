"""Every quota store, as one parametrised fixture: a store is correct when it passes every test
of this directory (as Limitador's tests/integration_tests.rs runs each scenario on each
storage).

To add a backend or a wrapper: append a `Backend` to BACKENDS. `exact` says the store answers
bit for bit what the reference model (algorithms.py, run by MemoryStore) answers; the local
over-limit cache is not exact by design (it does not charge the rejections it answers), so it
runs every scenario but the bit-for-bit comparisons.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import pytest

from authz_service.ratelimit.factory import build_store
from authz_service.ratelimit.memory_store import MemoryStore
from authz_service.ratelimit.redis_store import RedisStore
from authz_service.ratelimit.store import QuotaStore
from authz_service.ratelimit.store_chain import Batching, Breaker, LocalOverLimitCache, compose
from authz_service.schema import RateLimitSettings, RedisSettings
from tests.support.redis import LocalRedisCluster, RedisServer

TIMEOUT_MS = 2000  # generous: a loaded CI machine must not turn a scenario into an outage

Builder = Callable[[pytest.FixtureRequest, str], QuotaStore]  # (request, key prefix) -> store


def _redis_settings(request: pytest.FixtureRequest, prefix: str) -> RedisSettings:
    """Standalone Redis over the default connection: one pipelined connection."""
    server: RedisServer = request.getfixturevalue("redis_server")
    return RedisSettings(
        url=server.url, key_prefix=prefix, timeout_ms=TIMEOUT_MS, connect_timeout_ms=TIMEOUT_MS
    )


def _pool_settings(request: pytest.FixtureRequest, prefix: str) -> RedisSettings:
    """Standalone Redis through redis-py's connection pool (`connection: pool`)."""
    return _redis_settings(request, prefix).model_copy(update={"connection": "pool"})


def _cluster_settings(request: pytest.FixtureRequest, prefix: str) -> RedisSettings:
    cluster: LocalRedisCluster = request.getfixturevalue("redis_cluster")
    return RedisSettings(
        url=cluster.url,
        cluster=True,
        key_prefix=prefix,
        timeout_ms=TIMEOUT_MS,
        connect_timeout_ms=TIMEOUT_MS,
    )


def _cluster_pool_settings(request: pytest.FixtureRequest, prefix: str) -> RedisSettings:
    """The cluster through redis-py's cluster client (`connection: pool`)."""
    return _cluster_settings(request, prefix).model_copy(update={"connection": "pool"})


def _redis(request: pytest.FixtureRequest, prefix: str) -> QuotaStore:
    return RedisStore.from_settings(_redis_settings(request, prefix))


def _redis_pool(request: pytest.FixtureRequest, prefix: str) -> QuotaStore:
    return RedisStore.from_settings(_pool_settings(request, prefix))


def _cluster(request: pytest.FixtureRequest, prefix: str) -> QuotaStore:
    return RedisStore.from_settings(_cluster_settings(request, prefix))


def _cluster_pool(request: pytest.FixtureRequest, prefix: str) -> QuotaStore:
    return RedisStore.from_settings(_cluster_pool_settings(request, prefix))


def _built(settings: Callable[[pytest.FixtureRequest, str], RedisSettings] | None) -> Builder:
    """The chain `build_store` makes for production settings (every layer, the cache on)."""

    def build(request: pytest.FixtureRequest, prefix: str) -> QuotaStore:
        if settings is None:
            return build_store(RateLimitSettings.model_validate({"redis": {"key_prefix": prefix}}))
        redis = settings(request, prefix)
        return build_store(RateLimitSettings(store="redis", redis=redis))

    return build


PIPELINED = frozenset({"redis_commands_in_flight"})
POOL = frozenset({"redis_commands_in_flight", "redis_pool_in_use", "redis_pool_max"})
CLUSTER = frozenset({"redis_commands_in_flight"})
MEMORY = frozenset({"memory_keys", "memory_max_keys"})
BREAKER = frozenset({"breaker_open"})
BATCHING = frozenset({"redis_round_trips"})
CACHE = frozenset({"local_over_limit_entries"})


@dataclass(frozen=True)
class Backend:
    name: str
    build: Builder
    figures: frozenset[str]  # the keys of its stats()
    exact: bool = True
    redis: bool = True  # needs a real redis-server

    def param(self) -> object:
        marks = [pytest.mark.redis] if self.redis else []
        return pytest.param(self, id=self.name, marks=marks)


BACKENDS = [
    Backend("memory", lambda _, prefix: MemoryStore(prefix), MEMORY, redis=False),
    Backend("redis", _redis, PIPELINED),
    Backend("redis_pool", _redis_pool, POOL),
    Backend("redis_cluster", _cluster, CLUSTER),
    Backend("redis_cluster_pool", _cluster_pool, CLUSTER),
    Backend(
        "breaker(redis)",
        lambda r, p: compose(_redis(r, p), [Breaker(TIMEOUT_MS / 1000, 5, 5.0)]),
        PIPELINED | BREAKER,
    ),
    Backend(
        "batching(redis)",
        lambda r, p: compose(_redis(r, p), [Batching(TIMEOUT_MS / 1000)]),
        PIPELINED | BATCHING,
    ),
    Backend(
        "local_cache(redis)",
        lambda r, p: compose(_redis(r, p), [LocalOverLimitCache(1000)]),
        PIPELINED | CACHE,
        exact=False,
    ),
    Backend("built(memory)", _built(None), MEMORY | CACHE, exact=False, redis=False),
    Backend(
        "built(redis)", _built(_redis_settings), PIPELINED | BREAKER | BATCHING | CACHE, exact=False
    ),
    Backend(
        "built(redis_cluster)",
        _built(_cluster_settings),
        CLUSTER | BREAKER | BATCHING | CACHE,
        exact=False,
    ),
]
# Compared with the reference model itself: every exact store but the reference.
EXACT_BACKENDS = [b for b in BACKENDS if b.exact and b.name != "memory"]


@pytest.fixture(params=[b.param() for b in BACKENDS])
def backend(request: pytest.FixtureRequest) -> Backend:
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
async def store(backend: Backend, request: pytest.FixtureRequest) -> AsyncIterator[QuotaStore]:
    """A fresh store: its own key prefix on the shared servers."""
    built = backend.build(request, f"conf{uuid.uuid4().hex[:8]}:")
    yield built
    await built.close()


@pytest.fixture(params=[b.param() for b in EXACT_BACKENDS])
async def exact_store(request: pytest.FixtureRequest) -> AsyncIterator[QuotaStore]:
    backend: Backend = request.param
    built = backend.build(request, f"conf{uuid.uuid4().hex[:8]}:")
    yield built
    await built.close()
