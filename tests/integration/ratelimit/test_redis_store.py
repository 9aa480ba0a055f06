"""What only RedisStore promises, against a real redis-server: one round trip per request,
exact counts across processes, the figures of its stats(). The scenarios every store shares
(agreement with the reference model, expiry, reset) are in conformance/."""

from __future__ import annotations

import asyncio
import sys
import uuid
from collections.abc import AsyncIterator

import pytest

from authz_service.ratelimit.limiter import RateLimiter
from authz_service.ratelimit.redis_store import RedisStore
from authz_service.ratelimit.results import Descriptor, RateLimitRequestData
from authz_service.ratelimit.rules import compile_rules, parse_domain_document
from authz_service.ratelimit.store import Hit, StoreAlgorithm
from authz_service.schema import RedisSettings
from tests.support import REPO_ROOT
from tests.support.redis import RedisServer, RedisServerFactory

pytestmark = pytest.mark.redis

ALGORITHMS: list[StoreAlgorithm] = ["fixed_window", "sliding_window", "token_bucket", "lockout"]


@pytest.fixture
async def store(redis_server: RedisServer) -> AsyncIterator[RedisStore]:
    prefix = f"t{uuid.uuid4().hex[:8]}:"
    redis_store = RedisStore.from_settings(
        RedisSettings(url=redis_server.url, key_prefix=prefix, timeout_ms=2000)
    )
    yield redis_store
    await redis_store.close()


async def test_one_evalsha_per_should_rate_limit_with_three_descriptors(
    redis_server: RedisServer, store: RedisStore
) -> None:
    config = compile_rules(
        [
            parse_domain_document(
                """
domain: edge
descriptors:
  - {key: client_ip, rate_limit: {unit: second, requests_per_unit: 1000}}
  - key: user
    rate_limits:
      - {unit: second, requests_per_unit: 100, algorithm: token_bucket}
      - {unit: day, requests_per_unit: 100000, algorithm: sliding_window}
  - {key: path, rate_limit: {unit: minute, requests_per_unit: 1000}}
""",
                "edge.yaml",
            )
        ]
    )
    limiter = RateLimiter(config, store)
    request = RateLimitRequestData(
        "edge",
        (
            Descriptor((("client_ip", "192.0.2.1"),)),
            Descriptor((("user", "alice"),)),
            Descriptor((("path", "/orders"),)),
        ),
    )
    await limiter.should_rate_limit(request)  # loads the script (EVAL) on first use
    redis_server.cli("CONFIG", "RESETSTAT")
    for _ in range(10):
        await limiter.should_rate_limit(request)
    # commandstats also lists the GET/SET the script runs inside Redis, and our own admin calls.
    inside_script_or_admin = {"get", "set", "del", "info", "config|resetstat"}
    calls = redis_server.command_calls()
    assert {k: v for k, v in calls.items() if k not in inside_script_or_admin} == {"evalsha": 10}


@pytest.mark.parametrize("algorithm", ["fixed_window", "sliding_window", "token_bucket"])
async def test_two_processes_sharing_redis_admit_exactly_the_limit(
    redis_server: RedisServer, algorithm: str
) -> None:
    """Each process fires 600 hits at a limit of 1000 once both are connected: together they
    must get exactly 1000, however the scheduler interleaves them (each gets at least 400)."""
    limit, per_process = 1000, 600
    now = 1_700_000_000.0  # one instant: no refill, no window edge
    arguments = [redis_server.url, f"race{uuid.uuid4().hex[:8]}:", algorithm]
    arguments += [str(limit), str(per_process), str(now)]
    processes = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.integration.ratelimit.hammer",
            *arguments,
            cwd=REPO_ROOT,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        for _ in range(2)
    ]
    try:
        async with asyncio.timeout(60):
            for process in processes:  # the barrier: both connected before either fires
                assert process.stdout is not None
                assert await process.stdout.readline() == b"ready\n"
            for process in processes:
                assert process.stdin is not None
                process.stdin.write(b"go\n")
            outputs = await asyncio.gather(*(p.communicate() for p in processes))
    finally:
        for process in processes:
            if process.returncode is None:
                process.kill()
                await process.wait()
    assert [p.returncode for p in processes] == [0, 0]
    admitted = [int(stdout.strip()) for stdout, _ in outputs]
    assert sum(admitted) == limit


async def test_stats_count_the_commands_in_flight_and_the_connections_they_hold(
    redis_server_factory: RedisServerFactory,
) -> None:
    server = redis_server_factory()
    pool = RedisSettings(url=server.url, timeout_ms=5000, pool_size=2, connection="pool")
    store = RedisStore.from_settings(pool)
    look, take = (
        Hit("{s}|f", "fixed_window", 10, 60.0, 0),
        Hit("{s}|f", "fixed_window", 10, 60.0, 1),
    )
    await store.apply([look], 1.0)  # connected, script loaded
    server.pause()  # a hung Redis: the next commands stay in flight
    calls = [asyncio.create_task(store.apply([take], 1.0)) for _ in range(3)]
    try:
        async with asyncio.timeout(5):
            while store.stats()["redis_commands_in_flight"] < 3:  # noqa: ASYNC110
                await asyncio.sleep(0)  # yield until the tasks sent them: no timed wait
        held = store.stats()
    finally:
        server.resume()
    answers = await asyncio.gather(*calls)
    idle = store.stats()
    await store.close()

    # Two hold the pool's two connections, the third waits for one.
    assert held == {"redis_commands_in_flight": 3, "redis_pool_in_use": 2, "redis_pool_max": 2}
    assert all(verdicts[0].allowed for verdicts in answers)
    assert idle == {"redis_commands_in_flight": 0, "redis_pool_in_use": 0, "redis_pool_max": 2}
