"""Two service processes (replicas) sharing one Redis admit exactly the limit between them:
ShouldRateLimit and Check-with-quota calls race on both ports at once, and the number of
OK answers is the limit, not the limit per replica."""

from __future__ import annotations

import asyncio
import copy
import uuid
from collections import Counter
from pathlib import Path

import grpc
import pytest

from tests.faults.grpc_calls import Client, check_request, rls_request
from tests.faults.service import fault_config, start_service
from tests.support.idp import running_idp
from tests.support.redis import RedisServerFactory

pytestmark = pytest.mark.redis

LIMIT = 60
DOMAIN = "race"


async def test_two_replicas_admit_exactly_the_limit_between_them(
    redis_server_factory: RedisServerFactory, tmp_path: Path
) -> None:
    redis_server = redis_server_factory()
    with running_idp() as idp:
        limits = {
            "domain": DOMAIN,
            "descriptors": [
                {"key": "user", "rate_limit": {"unit": "hour", "requests_per_unit": LIMIT}}
            ],
        }
        config = fault_config(
            idp,
            0,
            rate_limit={
                "store": "redis",
                "redis": {
                    "url": redis_server.url,
                    "key_prefix": f"two{uuid.uuid4().hex[:6]}:",
                    "timeout_ms": 2000,
                },
                "domains": [limits],
            },
            check_quota={
                "domain": DOMAIN,
                "descriptors": [{"entries": [{"key": "user", "source": "principal"}]}],
            },
        )
        replicas = [start_service(copy.deepcopy(config), tmp_path, f"r{i}") for i in range(2)]
        token = idp.mint("alice", lifetime_s=600)
        check = check_request("/api/orders", {"authorization": f"Bearer {token}"})
        rls = rls_request(DOMAIN, [("user", "alice")])
        try:
            channels = [grpc.aio.insecure_channel(f"127.0.0.1:{port}") for _, port, _ in replicas]
            clients = [Client(channel, timeout_s=10) for channel in channels]
            calls = []
            for i in range(4 * LIMIT):
                client = clients[i % 2]
                calls.append(client.check(check) if i % 3 else client.should_rate_limit(rls))
            outcomes = await asyncio.gather(*calls)
            for channel in channels:
                await channel.close()
        finally:
            for service, _, _ in replicas:
                service.stop()

    counted = Counter(outcomes)
    assert counted["ok"] + counted["OK"] == LIMIT, counted
    assert set(counted) <= {"ok", "OK", "http 429 rate_limited", "OVER_LIMIT"}, counted
