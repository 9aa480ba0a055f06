"""Redis down, hung or absent: fail fast, open the breaker, recover by itself."""

from __future__ import annotations

import asyncio
import time

import pytest

from authz_service.ratelimit.factory import build_limiter
from authz_service.ratelimit.limiter import RateLimiter
from authz_service.ratelimit.results import Descriptor, RateLimitRequestData
from authz_service.ratelimit.rules import compile_rules, parse_domain_document
from authz_service.ratelimit.store import StoreUnavailable
from authz_service.schema import RateLimitSettings
from tests.support import free_port
from tests.support.redis import RedisServer, RedisServerFactory

pytestmark = pytest.mark.redis

CONFIG = compile_rules(
    [
        parse_domain_document(
            "domain: d\ndescriptors:\n"
            "  - {key: ip, rate_limit: {unit: minute, requests_per_unit: 1000}}\n",
            "d.yaml",
        )
    ]
)
REQUEST = RateLimitRequestData("d", (Descriptor((("ip", "192.0.2.1"),)),))


def limiter_for(url: str, open_for: float = 0.5) -> RateLimiter:
    settings = RateLimitSettings.model_validate(
        {
            "store": "redis",
            "redis": {"url": url, "timeout_ms": 100, "connect_timeout_ms": 100},
            "circuit_breaker": {"failure_threshold": 3, "open_for": open_for},
        }
    )
    return build_limiter(settings, CONFIG)


async def elapsed_failure(limiter: RateLimiter) -> tuple[float, str]:
    start = time.monotonic()
    with pytest.raises(StoreUnavailable) as caught:
        await limiter.should_rate_limit(REQUEST)
    return time.monotonic() - start, str(caught.value)


async def test_unreachable_redis_at_start_does_not_crash_and_fails_fast() -> None:
    limiter = limiter_for(f"redis://127.0.0.1:{free_port()}/0")  # nothing listens there
    took, _ = await elapsed_failure(limiter)
    assert took < 0.5
    await limiter.close()


async def test_hung_redis_fails_within_the_timeout_then_the_breaker_opens(
    redis_server_factory: RedisServerFactory,
) -> None:
    server: RedisServer = redis_server_factory()
    limiter = limiter_for(server.url, open_for=30.0)
    assert not (await limiter.should_rate_limit(REQUEST)).over_limit
    server.pause()
    try:
        for _ in range(3):
            took, message = await elapsed_failure(limiter)
            assert took < 0.3, message
        took, message = await elapsed_failure(limiter)
        assert message == "circuit breaker open"
        assert took < 0.01
    finally:
        server.resume()
        await limiter.close()


async def test_killed_redis_answers_unavailable_and_recovers_when_it_returns(
    redis_server_factory: RedisServerFactory,
) -> None:
    server = redis_server_factory()
    limiter = limiter_for(server.url, open_for=0.3)
    assert not (await limiter.should_rate_limit(REQUEST)).over_limit
    server.kill()
    for _ in range(3):
        took, _ = await elapsed_failure(limiter)
        assert took < 0.3
    assert (await elapsed_failure(limiter))[1] == "circuit breaker open"
    server.start()  # same port
    deadline = time.monotonic() + 5
    while True:
        try:
            result = await limiter.should_rate_limit(REQUEST)
            break
        except StoreUnavailable:
            assert time.monotonic() < deadline, "did not recover"
            await asyncio.sleep(0.05)
    assert result.statuses[0].limit_remaining == 999  # a fresh server: counting again
    await limiter.close()
