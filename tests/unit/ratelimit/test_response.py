"""X-RateLimit headers, the JSON 429 body, and the RLS protobuf translation."""

from __future__ import annotations

import json

from envoy.extensions.common.ratelimit.v3 import ratelimit_pb2
from envoy.service.ratelimit.v3 import rls_pb2

from authz_service.grpc.ratelimit_messages import request_from_proto, response_to_proto
from authz_service.ratelimit.response import over_limit_body, rate_limit_headers
from authz_service.ratelimit.results import (
    Code,
    CurrentLimit,
    Descriptor,
    DescriptorStatus,
    LimitOverride,
    RateLimitResult,
)

OVER = RateLimitResult(
    Code.OVER_LIMIT,
    (
        DescriptorStatus(Code.OK, CurrentLimit(100, "minute"), 40, 12.0),
        DescriptorStatus(Code.OVER_LIMIT, CurrentLimit(10, "second", "per_ip"), 0, 0.4),
    ),
)


def test_headers_describe_the_over_limit_descriptor() -> None:
    assert rate_limit_headers(OVER) == {
        "x-ratelimit-limit": '10, 10;w=1;name="per_ip"',
        "x-ratelimit-remaining": "0",
        "x-ratelimit-reset": "1",
    }


def test_headers_describe_the_least_remaining_when_all_ok() -> None:
    ok = RateLimitResult(
        Code.OK,
        (
            DescriptorStatus(Code.OK, CurrentLimit(100, "minute"), 40, 12.0),
            DescriptorStatus(Code.OK, CurrentLimit(5, "hour"), 3, 100.0),
            DescriptorStatus(Code.OK),
        ),
    )
    assert rate_limit_headers(ok)["x-ratelimit-limit"] == "5, 5;w=3600"


def test_no_headers_without_any_limit() -> None:
    assert rate_limit_headers(RateLimitResult(Code.OK, (DescriptorStatus(Code.OK),))) == {}


def test_body_is_json_with_retry_after() -> None:
    assert json.loads(over_limit_body(OVER)) == {
        "error": "rate_limited",
        "reason": "rate_limited",
        "message": "too many requests",
        "retry_after_s": 1,
        "limit": "per_ip",
    }


def test_request_translation_keeps_overrides_and_both_hits_addends() -> None:
    message = rls_pb2.RateLimitRequest(domain="api", hits_addend=2)
    first = message.descriptors.add()
    first.entries.add(key="user", value="alice")
    first.limit.requests_per_unit = 7
    first.limit.unit = rls_pb2.RateLimitResponse.RateLimit.HOUR
    first.hits_addend.value = 0
    second = message.descriptors.add()
    second.entries.add(key="ip", value="1.2.3.4")
    data = request_from_proto(message)
    assert data.hits_addend == 2
    assert data.descriptors == (
        Descriptor((("user", "alice"),), LimitOverride(7, "hour"), 0),
        Descriptor((("ip", "1.2.3.4"),)),
    )
    assert isinstance(first, ratelimit_pb2.RateLimitDescriptor)


def test_response_translation_fills_statuses_and_a_json_raw_body() -> None:
    response = response_to_proto(OVER)
    assert response.overall_code == rls_pb2.RateLimitResponse.OVER_LIMIT
    status = response.statuses[1]
    assert status.code == rls_pb2.RateLimitResponse.OVER_LIMIT
    assert (status.current_limit.requests_per_unit, status.current_limit.name) == (10, "per_ip")
    assert status.current_limit.unit == rls_pb2.RateLimitResponse.RateLimit.SECOND
    assert status.duration_until_reset.seconds == 1
    assert response.statuses[0].limit_remaining == 40
    assert json.loads(response.raw_body)["error"] == "rate_limited"
    assert [(h.key, h.value) for h in response.response_headers_to_add] == [
        ("content-type", "application/json")
    ]


def test_ok_response_has_no_body() -> None:
    ok = RateLimitResult(Code.OK, (DescriptorStatus(Code.OK),))
    response = response_to_proto(ok)
    assert response.raw_body == b"" and not response.response_headers_to_add
    assert not response.statuses[0].HasField("current_limit")
