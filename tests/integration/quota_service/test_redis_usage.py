"""Usage in a real Redis: replicas of the service agree on the shares, and what each does
while Redis is down (store_unavailable)."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator

import pytest

from authz_service.ratelimit.redis_usage_store import RedisUsageStore
from authz_service.schema import RedisSettings
from tests.integration.quota_service.rig import (
    SETTINGS,
    Rig,
    blanket,
    report,
    running_rig,
    token_bucket,
)
from tests.support.redis import LocalRedisCluster, RedisServer, RedisServerFactory

pytestmark = pytest.mark.redis

ALICE = {"user": "alice"}


def store(redis: RedisServer, prefix: str) -> RedisUsageStore:
    return RedisUsageStore.from_settings(
        RedisSettings.model_validate({"url": redis.url, "key_prefix": prefix, "timeout_ms": 200})
    )


@contextlib.asynccontextmanager
async def two_replicas(redis: RedisServer, **settings: object) -> AsyncIterator[tuple[Rig, Rig]]:
    prefix = f"q{uuid.uuid4().hex[:6]}:"
    quota = SETTINGS.model_copy(update=settings)
    async with (
        running_rig(store(redis, prefix), quota) as first,
        running_rig(store(redis, prefix), quota) as second,
    ):
        second.clock.now = first.clock.now  # one wall clock
        yield first, second


async def test_replicas_split_one_limit_between_the_envoys_they_serve(
    redis_server_factory: RedisServerFactory,
) -> None:
    async with two_replicas(redis_server_factory()) as (a, b):
        envoy_a, envoy_b = await a.envoy(), await b.envoy()
        await envoy_a.ask(report((ALICE, 250, 0, 5)))  # alone so far: the whole limit
        answer_b = await envoy_b.ask(report((ALICE, 250, 0, 5)))
        # Replica B sees A's Envoy in Redis: half each (A's Envoy learns at its next report).
        assert token_bucket(answer_b.bucket_action[0]) == (50, 50, 1)
        answer_a = await envoy_a.ask(report((ALICE, 250, 0, 5)))
        assert token_bucket(answer_a.bucket_action[0]) == (50, 50, 1)
        view = await a.service.view("gateway", [("user", "alice")])
        assert view is not None and not view.local_only
        assert sorted(round(usage.share) for usage in view.envoys) == [50, 50]
        assert view.allowed == 500 and view.demand == pytest.approx(100)


@pytest.mark.parametrize(
    ("mode", "expected"),
    [("local_shares", (100, 100, 1)), ("allow_all", "ALLOW_ALL"), ("deny_all", "DENY_ALL")],
)
async def test_with_redis_down_each_replica_answers_what_store_unavailable_says(
    redis_server_factory: RedisServerFactory, mode: str, expected: object
) -> None:
    redis = redis_server_factory()
    async with two_replicas(redis, store_unavailable=mode) as (a, b):
        envoy_a, envoy_b = await a.envoy(), await b.envoy()
        await envoy_a.ask(report((ALICE, 250, 0, 5)))
        await envoy_b.ask(report((ALICE, 250, 0, 5)))
        redis.kill()
        (action,) = (await envoy_a.ask(report((ALICE, 250, 0, 5)))).bucket_action
        # local_shares: replica A knows only its own Envoy, which gets the whole limit.
        got = token_bucket(action) if mode == "local_shares" else blanket(action)
        assert got == expected
        view = await a.service.view("gateway", [("user", "alice")])
        assert view is not None and view.local_only


async def test_enforcement_is_shared_again_once_redis_answers(
    redis_server_factory: RedisServerFactory,
) -> None:
    redis = redis_server_factory()
    async with two_replicas(redis) as (a, b):
        envoy_a, envoy_b = await a.envoy(), await b.envoy()
        redis.kill()
        await envoy_a.ask(report((ALICE, 250, 0, 5)))
        redis.start()
        await envoy_a.ask(report((ALICE, 250, 0, 5)))
        answer_b = await envoy_b.ask(report((ALICE, 250, 0, 5)))
        assert token_bucket(answer_b.bucket_action[0]) == (50, 50, 1)


async def test_usage_of_many_buckets_in_one_report_on_a_redis_cluster(
    redis_cluster: LocalRedisCluster,
) -> None:
    settings = RedisSettings.model_validate(
        {"url": redis_cluster.url, "cluster": True, "key_prefix": f"c{uuid.uuid4().hex[:6]}:"}
    )
    # A loaded CI machine must not turn this into a test of the store timeout.
    async with running_rig(RedisUsageStore.from_settings(settings), store_timeout_s=10) as rig:
        envoy = await rig.envoy()
        # Cluster discovery and the script load on every node happen on the first report.
        await envoy.ask(report(({"user": "first"}, 1, 0, 0)))
        users = [{"user": f"user-{i}"} for i in range(60)]  # over every master
        response = await envoy.ask(report(*((user, 5, 0, 5) for user in users)))
        assert len(response.bucket_action) == 60
        assert {token_bucket(action) for action in response.bucket_action} == {(100, 100, 1)}
        view = await rig.service.view("gateway", [("user", "user-59")])
        assert view is not None and not view.local_only
        assert [usage.allowed for usage in view.envoys] == [5]


async def test_after_redis_restarts_empty_this_replicas_envoys_still_count(
    redis_server_factory: RedisServerFactory,
) -> None:
    redis = redis_server_factory()
    async with running_rig(store(redis, "empty:")) as rig:
        first, second = await rig.envoy(), await rig.envoy()
        await first.ask(report((ALICE, 250, 0, 5)))
        await second.ask(report((ALICE, 250, 0, 5)))
        await first.next()  # pushed: half
        redis.kill()
        redis.start()  # no persistence: every entry is gone
        # The first call meets the dead pooled connection (answered from local shares); the
        # next one reaches the empty Redis, which knows only the first Envoy.
        await first.ask(report((ALICE, 250, 0, 5)))
        answer = await first.ask(report((ALICE, 250, 0, 5)))
        view = await rig.service.view("gateway", [("user", "alice")])
        assert view is not None and not view.local_only
        assert [usage.envoy for usage in view.envoys] == [view.envoys[0].envoy]  # one seen
        # Not the whole limit: the second Envoy, unseen in Redis, still holds its half.
        assert token_bucket(answer.bucket_action[0]) == (50, 50, 1)
