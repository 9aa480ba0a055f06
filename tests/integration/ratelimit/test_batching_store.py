"""BatchingStore on a real Redis: concurrent calls share round trips and stay exact."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest

from authz_service.ratelimit.batching_store import BatchingStore
from authz_service.ratelimit.memory_store import MemoryStore
from authz_service.ratelimit.redis_store import RedisStore
from authz_service.ratelimit.store import Hit
from authz_service.schema import RedisSettings
from tests.support.redis import RedisServer

pytestmark = pytest.mark.redis


@pytest.fixture
async def batched(redis_server: RedisServer) -> AsyncIterator[BatchingStore]:
    store = RedisStore.from_settings(
        RedisSettings(url=redis_server.url, key_prefix=f"b{uuid.uuid4().hex[:8]}:", timeout_ms=2000)
    )
    yield BatchingStore(store)
    await store.close()


def hit(key: str, limit: int) -> Hit:
    return Hit(key=key, algorithm="fixed_window", limit=limit, window_s=60, hits=1)


async def test_concurrent_calls_admit_exactly_the_limit_in_few_round_trips(
    batched: BatchingStore, redis_server: RedisServer
) -> None:
    before = redis_server.command_calls().get("evalsha", 0)

    verdicts = await asyncio.gather(
        *(batched.apply([hit("user:alice", 25), hit("ip:1", 1000)], 1000.0) for _ in range(100))
    )

    assert sum(v[0].allowed for v in verdicts) == 25
    assert all(v[1].allowed for v in verdicts)
    calls = redis_server.command_calls().get("evalsha", 0) - before
    assert 1 <= calls == batched.stats()["redis_round_trips"] < 100


async def test_batched_answers_match_one_at_a_time_answers(batched: BatchingStore) -> None:
    memory = MemoryStore()
    requests = [[hit(f"k{i % 3}", 4)] for i in range(30)]

    together = await asyncio.gather(*(batched.apply(r, 500.0) for r in requests))
    one_by_one = [await memory.apply(r, 500.0) for r in requests]

    assert [[v.allowed for v in vs] for vs in together] == [
        [v.allowed for v in vs] for vs in one_by_one
    ]


async def test_a_store_failure_reaches_every_caller_of_the_batch(redis_server: RedisServer) -> None:
    broken = BatchingStore(
        RedisStore.from_settings(RedisSettings(url="redis://127.0.0.1:1/0", timeout_ms=200))
    )

    results = await asyncio.gather(
        *(broken.apply([hit("x", 5)], 1.0) for _ in range(5)), return_exceptions=True
    )

    assert all(isinstance(result, Exception) for result in results)
    await broken.close()
