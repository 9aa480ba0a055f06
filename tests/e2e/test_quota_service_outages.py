"""RLQS failure behaviour through real Envoys, with usage in a real Redis: the service
restarting, and Redis going down (`store_unavailable: local_shares`, the default).

While this service is away, each Envoy keeps enforcing its last assignment until its TTL
(15 s here), and reconnects at its next report (every 5 s): a restart shorter than that is
invisible to clients. While Redis is down, the replica splits each limit among the Envoys it
serves itself (exact with one replica). (The service also answers ext_authz here, which
fails closed while it restarts: those requests are 503, whatever the quota mode.)
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.quota_gateway import (
    LIMIT,
    PacedLoad,
    QuotaGateway,
    running_quota_gateway,
    wait_for,
)
from tests.support import find_binary
from tests.support.redis import RedisServer

pytestmark = [pytest.mark.envoy, pytest.mark.redis]


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A server of this test's own: the test kills it."""
    server = RedisServer(find_binary("redis-server"), tmp_path / "redis")
    server.start()
    yield server
    server.kill()


@pytest.fixture
def rlqs_gateway(
    tmp_path_factory: pytest.TempPathFactory, envoy_available: str, redis: RedisServer
) -> Iterator[QuotaGateway]:
    with running_quota_gateway(tmp_path_factory.mktemp("rlqs-outage"), redis_url=redis.url) as gw:
        yield gw


def token(gateway: QuotaGateway, user: str) -> str:
    return gateway.idp.mint(user, roles=["editor"], lifetime_s=600)


async def test_a_service_restart_keeps_the_limit_enforced(rlqs_gateway: QuotaGateway) -> None:
    gateway = rlqs_gateway
    load = PacedLoad(gateway, token(gateway, "restart"))
    load.drive("a")
    load.drive("b")
    await load.until(6.0)
    restarted_at = load.now()
    # SIGTERM (streams end at once), then a new process; the load goes on meanwhile.
    await asyncio.to_thread(gateway.restart_authz)
    back_at = load.now()
    await load.until(back_at + 12.0)
    await load.stop_all()
    answers = load.answers

    # ext_authz lives in the same process: Check fails closed (503) while it restarts.
    outside = [
        status
        for answers_of_envoy in answers.by_envoy.values()
        for at, status in answers_of_envoy
        if not restarted_at <= at < back_at + 1.0
    ]
    assert set(outside) <= {200, 429}, gateway.logs()
    # Envoys enforce their last shares meanwhile (no fall-open), then new ones.
    during = answers.allowed(since=restarted_at, until=load.now())
    assert during <= LIMIT * (load.now() - restarted_at) + LIMIT, during
    steady = answers.allowed(since=back_at + 6.0, until=back_at + 12.0)
    assert LIMIT * 6 * 0.75 <= steady <= LIMIT * 6 * 1.1, steady


async def test_with_redis_down_the_replica_shares_the_limit_among_its_envoys(
    rlqs_gateway: QuotaGateway, redis: RedisServer
) -> None:
    gateway = rlqs_gateway
    load = PacedLoad(gateway, token(gateway, "redis-down"))
    load.drive("a")
    load.drive("b")
    await load.until(6.0)
    redis.kill()
    down_at = load.now()
    await load.until(down_at + 12.0)
    redis.start()
    up_at = load.now()

    def enforced_for_two_seconds() -> bool:
        now = load.now()
        return load.answers.allowed(since=now - 2.0, until=now) <= LIMIT * 2 * 1.1

    await wait_for(enforced_for_two_seconds, 10.0, "enforcement after Redis is back")
    await load.stop_all()
    answers = load.answers

    assert answers.statuses() <= {200, 429}, gateway.logs()
    during = answers.allowed(since=down_at + 1.0, until=up_at)
    assert during <= LIMIT * (up_at - down_at - 1.0) * 1.1 + LIMIT, during
    assert during >= LIMIT * (up_at - down_at - 1.0) * 0.75, during  # shared, not denied
