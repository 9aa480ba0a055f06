"""One-time tokens shared by replicas through a real Redis (the quota store's full stack)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import pytest

from authz_service.authn.replay import ReplayGuard, ReplayVerdict, replay_key
from authz_service.decisions import AuthMethod, Identity
from authz_service.ratelimit.factory import build_store
from authz_service.ratelimit.store import QuotaStore
from authz_service.schema import RateLimitSettings, ReplayProtection
from tests.support import redis as redis_support
from tests.support.redis import RedisServer, RedisServerFactory

pytestmark = pytest.mark.redis
redis_server_factory = redis_support.redis_server_factory  # the fixture, for this module

ISSUER = "https://idp.example"
PREFIX = "authz:rl:"


@dataclass(frozen=True)
class Provider:
    issuer: str = ISSUER
    leeway_s: float = 5.0
    replay_protection: ReplayProtection = field(
        default_factory=lambda: ReplayProtection(enabled=True)
    )


def replica_store(url: str) -> QuotaStore:
    """What one service replica builds from `rate_limit: {store: redis}`."""
    settings = RateLimitSettings.model_validate(
        {
            "store": "redis",
            "redis": {
                "url": url,
                "timeout_ms": 200,
                "connect_timeout_ms": 200,
                "key_prefix": PREFIX,
            },
            "circuit_breaker": {"failure_threshold": 3, "open_for": 0.2},
        }
    )
    return build_store(settings)


def one_time_token(lifetime_s: float = 60) -> Identity:
    return Identity(
        principal="alice",
        method=AuthMethod.JWT,
        issuer=ISSUER,
        token_id=uuid.uuid4().hex,
        expires_at=time.time() + lifetime_s,
    )


Replicas = Callable[[str], tuple[ReplayGuard, ReplayGuard]]


@pytest.fixture
async def replicas() -> AsyncIterator[Replicas]:
    stores: list[QuotaStore] = []

    def build(url: str) -> tuple[ReplayGuard, ReplayGuard]:
        guards = []
        for _ in range(2):
            store = replica_store(url)
            stores.append(store)
            guard = ReplayGuard.for_providers([Provider()], store)
            assert guard is not None
            guards.append(guard)
        return guards[0], guards[1]

    yield build
    for store in stores:
        await store.close()


async def test_a_token_used_on_one_replica_is_refused_on_the_other(
    redis_server_factory: RedisServerFactory, replicas: Replicas
) -> None:
    first, second = replicas(redis_server_factory().url)
    identity = one_time_token()
    assert await first.check(identity) is ReplayVerdict.FIRST_USE
    assert await second.check(identity) is ReplayVerdict.REPLAYED
    assert await first.check(identity) is ReplayVerdict.REPLAYED


async def test_concurrent_uses_across_replicas_let_exactly_one_through(
    redis_server_factory: RedisServerFactory, replicas: Replicas
) -> None:
    first, second = replicas(redis_server_factory().url)
    identity = one_time_token()
    verdicts = await asyncio.gather(
        *(guard.check(identity) for _ in range(25) for guard in (first, second))
    )
    assert verdicts.count(ReplayVerdict.FIRST_USE) == 1
    assert verdicts.count(ReplayVerdict.REPLAYED) == 49


async def test_the_record_expires_with_the_token_and_holds_no_jti(
    redis_server_factory: RedisServerFactory, replicas: Replicas
) -> None:
    server: RedisServer = redis_server_factory()
    first, _ = replicas(server.url)
    identity = one_time_token(lifetime_s=60)
    assert await first.check(identity) is ReplayVerdict.FIRST_USE
    key = PREFIX + replay_key(ISSUER, identity.token_id)
    ttl_ms = int(server.cli("PTTL", key).strip())
    # Until exp + leeway (65 s), plus the store's one-second slack; never forever.
    assert 60_000 < ttl_ms <= 66_000 + 500
    assert identity.token_id not in server.cli("KEYS", "*")


async def test_redis_down_fails_closed_fast_and_protection_resumes_after_restart(
    redis_server_factory: RedisServerFactory, replicas: Replicas
) -> None:
    server = redis_server_factory()
    first, second = replicas(server.url)
    used = one_time_token()
    assert await first.check(used) is ReplayVerdict.FIRST_USE
    server.kill()
    started = time.monotonic()
    assert await first.check(one_time_token()) is ReplayVerdict.STORE_UNAVAILABLE
    assert time.monotonic() - started < 0.5
    server.start()  # same port, empty: earlier records are gone with the process
    deadline = time.monotonic() + 5
    fresh = one_time_token()
    while (verdict := await second.check(fresh)) is ReplayVerdict.STORE_UNAVAILABLE:
        assert time.monotonic() < deadline, "replay protection did not resume"
        await asyncio.sleep(0.05)
    assert verdict is ReplayVerdict.FIRST_USE
    assert await first.check(fresh) is ReplayVerdict.REPLAYED
