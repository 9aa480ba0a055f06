"""RedisStore on a local 3-master Redis Cluster."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from redis.asyncio.cluster import RedisCluster

from authz_service.ratelimit.counters import counter_base
from authz_service.ratelimit.redis_store import RedisStore, create_client
from authz_service.ratelimit.store import Hit
from authz_service.schema import RedisSettings
from tests.support.redis import LocalRedisCluster

pytestmark = pytest.mark.redis


@pytest.fixture
async def cluster_store(redis_cluster: LocalRedisCluster) -> AsyncIterator[RedisStore]:
    settings = RedisSettings(
        url=redis_cluster.url,
        cluster=True,
        key_prefix=f"c{uuid.uuid4().hex[:6]}:",
        timeout_ms=2000,
    )
    store = RedisStore.from_settings(settings)
    yield store
    await store.close()


def descriptor_hit(value: str, limit: int = 5) -> Hit:
    return Hit(counter_base("edge", [("user", value)]) + "|f60000.0", "fixed_window", limit, 60, 1)


async def test_descriptors_of_one_domain_spread_over_every_master(
    cluster_store: RedisStore, redis_cluster: LocalRedisCluster
) -> None:
    hits = [descriptor_hit(f"user{i}") for i in range(30)]
    await cluster_store.apply(hits, 1_700_000_000.0)
    holding = [int(node.cli("DBSIZE").strip()) for node in redis_cluster.nodes]
    assert sum(holding) >= 30 and all(count > 0 for count in holding)


async def test_cluster_settings_build_a_cluster_client(redis_cluster: LocalRedisCluster) -> None:
    client = create_client(RedisSettings(url=redis_cluster.url, cluster=True))
    try:
        assert isinstance(client, RedisCluster)
    finally:
        await client.aclose()


async def test_a_burst_beyond_the_pool_size_waits_for_connections_instead_of_failing(
    redis_cluster: LocalRedisCluster,
) -> None:
    # redis-py's cluster client raises MaxConnectionsError when a node's pool is empty (the
    # standalone client's BlockingConnectionPool waits): the store holds the burst back.
    settings = RedisSettings(
        url=redis_cluster.url,
        cluster=True,
        key_prefix="burst:",
        timeout_ms=5000,
        pool_size=2,
        connection="pool",
    )
    store = RedisStore.from_settings(settings)
    try:
        hit = descriptor_hit(f"burst-{uuid.uuid4().hex}", limit=30)
        results = await asyncio.gather(*(store.apply([hit], 1_700_000_000.0) for _ in range(60)))
    finally:
        await store.close()
    assert sum(r[0].allowed for r in results) == 30
