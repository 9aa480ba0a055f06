"""A token bucket's value in Redis across a rolling upgrade, against a real redis-server.

During the upgrade, replicas of the previous release (float seconds, `previous_release.py`)
and of this one (exact milliseconds, lua.py) share every key. Neither may crash on the
other's value, and neither may find a bucket emptier than it is.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from authz_service.ratelimit.algorithms import Verdict
from authz_service.ratelimit.redis_store import RedisStore
from authz_service.ratelimit.store import Hit, StoreUnavailable
from authz_service.schema import RedisSettings
from tests.integration.ratelimit.previous_release import previous_release_hit
from tests.support.redis import RedisServer

pytestmark = pytest.mark.redis

MINUTE = 1_700_000_040.0
PREFIX = "upgrade:"


@pytest.fixture
async def client(redis_server: RedisServer) -> AsyncIterator[Redis]:
    raw = Redis.from_url(redis_server.url)
    yield raw
    await raw.aclose()


@pytest.fixture
async def store(redis_server: RedisServer) -> AsyncIterator[RedisStore]:
    built = RedisStore.from_settings(
        RedisSettings(
            url=redis_server.url, key_prefix=PREFIX, timeout_ms=5000, connect_timeout_ms=5000
        )
    )
    yield built
    await built.close()


def bucket(limit: int, window_s: float, hits: int = 1) -> Hit:
    return Hit(f"{{{uuid.uuid4().hex}}}|t", "token_bucket", limit, window_s, hits)


async def test_the_arrival_time_is_stored_exactly_in_the_marked_layout(
    store: RedisStore, client: Redis
) -> None:
    hit = bucket(7, 60.0, hits=3)
    await store.apply([hit], MINUTE)
    # 3 * 60000 / 7 ms = 25714 + 2/7 ms: the instant rounded up to the millisecond
    # (…65.715 s), then the fraction (2) and what it is a fraction of (7).
    assert await client.get(PREFIX + hit.key) == b"+1700000065.71500000000020000000007"


async def test_a_value_of_the_previous_release_is_read_rounded_up_to_the_millisecond(
    store: RedisStore, client: Redis
) -> None:
    hit = bucket(2, 60.0)  # a token every 30 s
    await client.set(PREFIX + hit.key, "1700000069.9995", px=60_000)  # MINUTE + 29.9995 s
    # Read as MINUTE + 30 s: the one token left is the last (remaining 0), never 0.5 ms early.
    assert await store.apply([hit], MINUTE) == [Verdict(True, 0, 60.0)]
    assert await store.apply([hit], MINUTE) == [Verdict(False, 0, 30.0)]
    assert await client.get(PREFIX + hit.key) == b"+1700000100.00000000000000000000002"


async def test_the_previous_release_reads_the_new_value_as_the_instant_rounded_up(
    store: RedisStore, client: Redis
) -> None:
    hit = bucket(7, 60.0, hits=3)
    await store.apply([hit], MINUTE)  # exact: MINUTE + 25714 + 2/7 ms
    older = await previous_release_hit(client, PREFIX + hit.key, 7, 60.0, 1, MINUTE)
    # It takes the fourth token from MINUTE + 25.715 s: reset 34.2864… s, not the exact
    # 34.2857… s (later, never earlier), and no error.
    assert older.allowed
    assert 60 * 4 / 7 < older.reset_after < 60 * 4 / 7 + 0.001
    assert await client.get(PREFIX + hit.key) == b"1700000074.2864285"


@pytest.mark.parametrize(("limit", "window_s"), [(25, 60.0), (7, 60.0), (3, 1.0), (1000, 3600.0)])
async def test_a_mixed_fleet_sharing_a_bucket_never_admits_more_than_the_limit(
    store: RedisStore, client: Redis, limit: int, window_s: float
) -> None:
    hit = bucket(limit, window_s)
    admitted = 0
    for turn in range(limit + 3):  # one instant: no refill
        if turn % 2:
            (verdict,) = await store.apply([hit], MINUTE)
        else:
            verdict = await previous_release_hit(
                client, PREFIX + hit.key, limit, window_s, 1, MINUTE
            )
        admitted += verdict.allowed
    # Each change of hands rounds the arrival time up (by under a millisecond): a mixed
    # fleet may lose one token of a burst, never grant one more.
    assert limit - 1 <= admitted <= limit


@pytest.mark.parametrize("value", ["garbage", "nan", "inf", "+1700000065.715"])
async def test_an_unreadable_arrival_time_is_an_error_naming_the_key_not_a_full_bucket(
    store: RedisStore, client: Redis, value: str
) -> None:
    hit = bucket(7, 60.0)
    await client.set(PREFIX + hit.key, value, px=60_000)
    with pytest.raises(StoreUnavailable, match="holds an unreadable arrival time") as raised:
        await store.apply([hit], MINUTE)
    assert PREFIX + hit.key in str(raised.value)
