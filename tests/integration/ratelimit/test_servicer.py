"""ShouldRateLimit end to end: a real grpc.aio server on port 0, a gRPC client, real Redis."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import grpc
import pytest
from envoy.service.ratelimit.v3 import rls_pb2, rls_pb2_grpc

from authz_service.grpc.ratelimit_servicer import add_ratelimit_servicer
from authz_service.ratelimit.factory import build_limiter, build_store
from authz_service.ratelimit.limiter import RateLimiter
from authz_service.ratelimit.rules import RateLimitRules, compile_rules, parse_domain_document
from authz_service.ratelimit.store import QuotaStore
from authz_service.schema import RateLimitSettings
from tests.support.redis import RedisServer, RedisServerFactory

pytestmark = [pytest.mark.redis, pytest.mark.usefixtures("fresh_minute")]

CONFIG = """
domain: edge
descriptors:
  - key: client_ip
    rate_limit: {unit: minute, requests_per_unit: 2, name: per_ip}
  - key: user
    rate_limit: {unit: hour, requests_per_unit: 100}
  - key: path
    rate_limit: {unit: second, requests_per_unit: 50, algorithm: token_bucket}
"""
OK = rls_pb2.RateLimitResponse.OK
OVER_LIMIT = rls_pb2.RateLimitResponse.OVER_LIMIT


def compile_text(text: str) -> RateLimitRules:
    return compile_rules([parse_domain_document(text, "edge.yaml")])


@dataclass
class Rig:
    stub: rls_pb2_grpc.RateLimitServiceStub
    redis: RedisServer
    current: list[RateLimiter]
    settings: RateLimitSettings
    store: QuotaStore


@pytest.fixture
async def rig(redis_server_factory: RedisServerFactory) -> AsyncIterator[Rig]:
    redis = redis_server_factory()
    settings = RateLimitSettings.model_validate(
        {"store": "redis", "redis": {"url": redis.url, "timeout_ms": 100}}
    )
    store = build_store(settings)
    current = [build_limiter(settings, compile_text(CONFIG), store)]
    server = grpc.aio.server()
    add_ratelimit_servicer(server, lambda: current[0])
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield Rig(rls_pb2_grpc.RateLimitServiceStub(channel), redis, current, settings, store)
    finally:
        await channel.close()
        await server.stop(None)
        await current[0].close()


def rls_request(*descriptors: dict[str, str], domain: str = "edge") -> rls_pb2.RateLimitRequest:
    request = rls_pb2.RateLimitRequest(domain=domain)
    for entries in descriptors:
        descriptor = request.descriptors.add()
        for key, value in entries.items():
            descriptor.entries.add(key=key, value=value)
    return request


async def test_over_limit_response_has_statuses_headers_and_json_body(rig: Rig) -> None:
    request = rls_request({"client_ip": "192.0.2.1"})
    responses = [await rig.stub.ShouldRateLimit(request) for _ in range(3)]
    assert [r.overall_code for r in responses] == [OK, OK, OVER_LIMIT]
    first, last = responses[0].statuses[0], responses[2].statuses[0]
    assert (first.limit_remaining, first.current_limit.requests_per_unit) == (1, 2)
    assert first.current_limit.unit == rls_pb2.RateLimitResponse.RateLimit.MINUTE
    assert first.current_limit.name == "per_ip"
    assert 0 < first.duration_until_reset.seconds <= 60
    assert last.code == OVER_LIMIT and last.limit_remaining == 0
    assert json.loads(responses[2].raw_body)["error"] == "rate_limited"
    assert responses[2].response_headers_to_add[0].value == "application/json"


async def test_three_descriptors_cost_one_evalsha(rig: Rig) -> None:
    request = rls_request({"client_ip": "192.0.2.9"}, {"user": "alice"}, {"path": "/orders"})
    await rig.stub.ShouldRateLimit(request)  # first use loads the script
    rig.redis.cli("CONFIG", "RESETSTAT")
    response = await rig.stub.ShouldRateLimit(request)
    assert len(response.statuses) == 3
    calls = rig.redis.command_calls()
    assert calls["evalsha"] == 1
    assert set(calls) <= {"evalsha", "get", "set", "info", "config|resetstat"}


async def test_redis_down_answers_unavailable_fast(rig: Rig) -> None:
    rig.redis.kill()
    start = time.monotonic()
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await rig.stub.ShouldRateLimit(rls_request({"client_ip": "192.0.2.1"}))
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    assert time.monotonic() - start < 0.5


async def test_empty_domain_is_invalid_argument(rig: Rig) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await rig.stub.ShouldRateLimit(rls_request({"client_ip": "x"}, domain=""))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_swapped_limiter_applies_to_the_next_call(rig: Rig) -> None:
    stricter = CONFIG.replace("requests_per_unit: 2,", "requests_per_unit: 0,")
    # What a reload swaps in: a limiter with the new rules on the same store.
    rig.current[0] = build_limiter(rig.settings, compile_text(stricter), rig.store)
    response = await rig.stub.ShouldRateLimit(rls_request({"client_ip": "192.0.2.7"}))
    assert response.overall_code == OVER_LIMIT
