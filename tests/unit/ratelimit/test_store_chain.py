"""The store chain: which layers wrap which backend, in which order, for each configuration."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pytest

from authz_service.ratelimit.algorithms import Verdict
from authz_service.ratelimit.factory import build_store, store_layers
from authz_service.ratelimit.memory_store import MemoryStore
from authz_service.ratelimit.store import Hit, QuotaStore
from authz_service.ratelimit.store_chain import (
    Batching,
    Breaker,
    LocalOverLimitCache,
    StoreLayer,
    compose,
)
from authz_service.schema import RateLimitSettings

REDIS = {"url": "redis://127.0.0.1:1/0", "timeout_ms": 40}  # never connected: nothing listens
CLUSTER = {**REDIS, "cluster": True}
BREAKER = {"failure_threshold": 3, "open_for": "7s"}
HIT = Hit("{d|k=v}|f", "fixed_window", 1, 60.0, 1)


def settings(store: str, redis: dict[str, Any], cache: bool) -> RateLimitSettings:
    return RateLimitSettings.model_validate(
        {
            "store": store,
            "redis": redis,
            "circuit_breaker": BREAKER,
            "local_over_limit_cache": cache,
            "local_cache_max_entries": 500,
        }
    )


NETWORK_LAYERS: list[StoreLayer] = [Breaker(0.04, 3, 7.0), Batching(0.04)]
CACHE: list[StoreLayer] = [LocalOverLimitCache(500)]

CONFIGURATIONS = {
    "memory": (settings("memory", {}, cache=False), []),
    "memory+cache": (settings("memory", {}, cache=True), CACHE),
    "redis": (settings("redis", REDIS, cache=False), NETWORK_LAYERS),
    "redis+cache": (settings("redis", REDIS, cache=True), NETWORK_LAYERS + CACHE),
    "cluster": (settings("redis", CLUSTER, cache=False), NETWORK_LAYERS),
    "cluster+cache": (settings("redis", CLUSTER, cache=True), NETWORK_LAYERS + CACHE),
}


@pytest.mark.parametrize("name", CONFIGURATIONS)
def test_each_configuration_declares_its_layers_innermost_first(name: str) -> None:
    configured, expected = CONFIGURATIONS[name]
    assert store_layers(configured) == expected


@dataclass(frozen=True)
class Tagged:
    """A layer that records what it wraps."""

    tag: str

    def wrap(self, inner: QuotaStore) -> QuotaStore:
        return Wrapped(self.tag, inner)


@dataclass(frozen=True)
class Wrapped:
    """A pass-through QuotaStore that says which layer made it and what it wraps."""

    tag: str
    inner: QuotaStore

    async def apply(self, hits: Sequence[Hit], now: float) -> list[Verdict]:
        return await self.inner.apply(hits, now)

    async def reset(self, hits: Sequence[Hit], now: float) -> None:
        await self.inner.reset(hits, now)

    async def close(self) -> None:
        await self.inner.close()

    def stats(self) -> Mapping[str, float]:
        return self.inner.stats()


async def test_compose_wraps_the_first_layer_innermost() -> None:
    backend = MemoryStore()
    store = compose(backend, [Tagged("breaker"), Tagged("batching"), Tagged("cache")])
    assert store == Wrapped("cache", Wrapped("batching", Wrapped("breaker", backend)))
    assert (await store.apply([HIT], 0.0))[0].allowed  # each layer passes the call down
    assert compose(backend, []) is backend


MEMORY_FIGURES = {"memory_keys", "memory_max_keys"}
# Standalone Redis over its default connection, one pipelined connection: no pool to report.
STANDALONE_FIGURES = {"redis_commands_in_flight"}
CLUSTER_FIGURES = {"redis_commands_in_flight"}
NETWORK_FIGURES = {"breaker_open", "redis_round_trips"}
CACHE_FIGURES = {"local_over_limit_entries"}

FIGURES = {
    "memory": MEMORY_FIGURES,
    "memory+cache": MEMORY_FIGURES | CACHE_FIGURES,
    "redis": STANDALONE_FIGURES | NETWORK_FIGURES,
    "redis+cache": STANDALONE_FIGURES | NETWORK_FIGURES | CACHE_FIGURES,
    "cluster": CLUSTER_FIGURES | NETWORK_FIGURES,
    "cluster+cache": CLUSTER_FIGURES | NETWORK_FIGURES | CACHE_FIGURES,
}


@pytest.mark.parametrize("name", CONFIGURATIONS)
async def test_the_built_chain_reports_the_figures_of_every_layer(name: str) -> None:
    configured, _ = CONFIGURATIONS[name]
    store = build_store(configured)  # never connects
    try:
        assert set(store.stats()) == FIGURES[name]
        assert store.stats().get("breaker_open", 0.0) == 0.0
    finally:
        await store.close()
