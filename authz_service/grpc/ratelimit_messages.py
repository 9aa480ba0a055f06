"""envoy.service.ratelimit.v3 messages <-> the rate limiter's core types (pure functions)."""

from __future__ import annotations

from typing import Any

from envoy.config.core.v3 import base_pb2
from envoy.service.ratelimit.v3 import rls_pb2

from authz_service.errors import UnreadableRequest
from authz_service.ratelimit.response import JSON_CONTENT_TYPE, over_limit_body, reset_seconds
from authz_service.ratelimit.results import (
    Code,
    Descriptor,
    DescriptorStatus,
    LimitOverride,
    RateLimitRequestData,
    RateLimitResult,
)
from authz_service.schema import Unit

_UNITS: dict[int, Unit] = {
    rls_pb2.RateLimitResponse.RateLimit.SECOND: "second",
    rls_pb2.RateLimitResponse.RateLimit.MINUTE: "minute",
    rls_pb2.RateLimitResponse.RateLimit.HOUR: "hour",
    rls_pb2.RateLimitResponse.RateLimit.DAY: "day",
    rls_pb2.RateLimitResponse.RateLimit.WEEK: "week",
    rls_pb2.RateLimitResponse.RateLimit.MONTH: "month",
    rls_pb2.RateLimitResponse.RateLimit.YEAR: "year",
}
_UNIT_NUMBERS = {name: number for number, name in _UNITS.items()}
_CODES = {
    Code.OK: rls_pb2.RateLimitResponse.OK,
    Code.OVER_LIMIT: rls_pb2.RateLimitResponse.OVER_LIMIT,
}


class BadRequest(UnreadableRequest):
    """The request cannot be evaluated (empty domain, no descriptors, unknown unit): the call
    ends INVALID_ARGUMENT, and Envoy's failure mode decides."""

    grpc_status = "INVALID_ARGUMENT"
    http_status = 400


def request_from_proto(message: Any) -> RateLimitRequestData:
    if not message.domain:
        raise BadRequest("rate limit domain must not be empty")
    if not message.descriptors:
        raise BadRequest("rate limit descriptor list must not be empty")
    return RateLimitRequestData(
        domain=message.domain,
        descriptors=tuple(_descriptor(d) for d in message.descriptors),
        hits_addend=message.hits_addend,
    )


def _descriptor(message: Any) -> Descriptor:
    override = None
    if message.HasField("limit"):
        unit = _UNITS.get(message.limit.unit)
        if unit is None:
            raise BadRequest("descriptor limit override has no valid unit")
        override = LimitOverride(message.limit.requests_per_unit, unit)
    hits = message.hits_addend.value if message.HasField("hits_addend") else None
    return Descriptor(tuple((e.key, e.value) for e in message.entries), override, hits)


def response_to_proto(result: RateLimitResult) -> Any:
    response = rls_pb2.RateLimitResponse(
        overall_code=_CODES[result.overall_code],
        statuses=[_status(s) for s in result.statuses],
    )
    if result.over_limit:
        response.raw_body = over_limit_body(result)
        response.response_headers_to_add.append(
            base_pb2.HeaderValue(key="content-type", value=JSON_CONTENT_TYPE)
        )
    return response


def _status(status: DescriptorStatus) -> Any:
    message = rls_pb2.RateLimitResponse.DescriptorStatus(
        code=_CODES[status.code], limit_remaining=status.limit_remaining
    )
    if status.current_limit is not None:
        limit = status.current_limit
        message.current_limit.requests_per_unit = limit.requests_per_unit
        message.current_limit.unit = _UNIT_NUMBERS[limit.unit]
        message.current_limit.name = limit.name
        message.duration_until_reset.seconds = reset_seconds(status.duration_until_reset)
    return message
