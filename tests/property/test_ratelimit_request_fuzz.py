"""Hypothesis over RateLimitRequest through the real RateLimitServicer (memory store).

Property: every request gets a RateLimitResponse with one status per descriptor, or one of the
documented aborts (INVALID_ARGUMENT for an unreadable request); nothing else escapes.
"""

from __future__ import annotations

import grpc
from envoy.extensions.common.ratelimit.v3 import ratelimit_pb2
from envoy.service.ratelimit.v3 import rls_pb2
from envoy.type.v3 import ratelimit_unit_pb2
from google.protobuf import wrappers_pb2
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from authz_service.grpc.ratelimit_servicer import RateLimitServicer
from tests.property.conftest import Aborted, FakeContext, LocalService

DOCUMENTED_ABORTS = {grpc.StatusCode.INVALID_ARGUMENT}
UINT32 = st.integers(0, 2**32 - 1)
UINT64 = st.integers(0, 2**64 - 1)

KEYS = st.one_of(
    st.sampled_from(
        ["remote_address", "user", "tier", "method_class", "endpoint", "generic_key", ""]
    ),
    st.text(max_size=30),
)
VALUES = st.one_of(
    st.sampled_from(["gold", "silver", "free", "write", "api", "admin", "127.0.0.1", "*", ""]),
    st.text(max_size=100),
    st.integers(1, 50_000).map(lambda n: "v" * n),
)
UNITS = st.one_of(
    st.sampled_from(list(ratelimit_unit_pb2.RateLimitUnit.values())[1:]),  # the valid ones
    st.sampled_from(list(ratelimit_unit_pb2.RateLimitUnit.values())),
    st.integers(-5, 2**31 - 1),
)


@st.composite
def descriptors(draw: st.DrawFn) -> ratelimit_pb2.RateLimitDescriptor:
    descriptor = ratelimit_pb2.RateLimitDescriptor(
        entries=[
            ratelimit_pb2.RateLimitDescriptor.Entry(key=key, value=value)
            for key, value in draw(st.lists(st.tuples(KEYS, VALUES), max_size=5))
        ]
    )
    if draw(st.integers(0, 7)) == 0:
        descriptor.limit.requests_per_unit = draw(UINT32)
        descriptor.limit.unit = draw(UNITS)
    if draw(st.booleans()):
        descriptor.hits_addend.CopyFrom(wrappers_pb2.UInt64Value(value=draw(UINT64)))
    return descriptor


@st.composite
def rate_limit_requests(draw: st.DrawFn) -> rls_pb2.RateLimitRequest:
    return rls_pb2.RateLimitRequest(
        domain=draw(st.one_of(st.just("gateway"), st.text(max_size=40))),
        descriptors=draw(st.one_of(st.lists(descriptors(), min_size=1, max_size=6), st.just([]))),
        hits_addend=draw(st.one_of(st.just(0), st.just(1), UINT32)),
    )


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(request=rate_limit_requests())
def test_only_documented_aborts_escape_should_rate_limit(
    local_service: LocalService, request: rls_pb2.RateLimitRequest
) -> None:
    servicer = RateLimitServicer(lambda: local_service.compiled_config.limiter)
    context = FakeContext()
    try:
        response = local_service.run(servicer.ShouldRateLimit(request, context))
    except Aborted as aborted:
        event(f"abort {aborted.code.name}: {str(aborted)[:60]}")
        assert aborted.code in DOCUMENTED_ABORTS, aborted
        assert (
            not request.domain
            or not request.descriptors
            or any(d.HasField("limit") for d in request.descriptors)
        )
        return
    event(f"code {rls_pb2.RateLimitResponse.Code.Name(response.overall_code)}")
    assert response.overall_code in {
        rls_pb2.RateLimitResponse.OK,
        rls_pb2.RateLimitResponse.OVER_LIMIT,
    }
    assert len(response.statuses) == len(request.descriptors)
