"""envoy.service.ratelimit.v3.RateLimitService on grpc.aio: translate, decide, translate back."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import grpc
from envoy.service.ratelimit.v3 import rls_pb2, rls_pb2_grpc

from authz_service.errors import AuthzError, QuotaUnavailable
from authz_service.grpc.ratelimit_messages import BadRequest, request_from_proto, response_to_proto
from authz_service.ratelimit.limiter import RateLimiter
from authz_service.ratelimit.results import RateLimitRequestData, RateLimitResult
from authz_service.ratelimit.store import StoreUnavailable
from authz_service.telemetry import tracing
from authz_service.telemetry.reporter import Reporter

LimiterProvider = Callable[[], RateLimiter | None]
_Error = tuple[grpc.StatusCode, str]


SERVICE_NAME = rls_pb2.DESCRIPTOR.services_by_name["RateLimitService"].full_name


class RateLimitServicer(rls_pb2_grpc.RateLimitServiceServicer):  # type: ignore[misc]
    def __init__(
        self, limiter_provider: LimiterProvider, telemetry: Reporter | None = None
    ) -> None:
        # Looked up per call, so a config reload swaps the limiter under live traffic.
        self._limiter_provider = limiter_provider
        self._telemetry = telemetry
        self._in_flight = (
            telemetry.in_flight_gauge("ShouldRateLimit") if telemetry is not None else None
        )

    async def ShouldRateLimit(
        self, request: Any, context: grpc.aio.ServicerContext[Any, Any]
    ) -> Any:
        started = time.perf_counter()
        telemetry = self._telemetry
        wants_metadata = telemetry.wants_metadata if telemetry is not None else tracing.enabled
        metadata = context.invocation_metadata() if wants_metadata else None
        in_flight = self._in_flight
        if in_flight is not None:
            in_flight.inc()
        try:
            with tracing.server_span(SERVICE_NAME, "ShouldRateLimit", metadata) as span:
                data, result, error = await self._decide(request)
                if telemetry is not None:
                    elapsed = time.perf_counter() - started
                    code, status = (error[0].name, error[0].value[0]) if error else ("", 0)
                    telemetry.rate_limit_done(data, result, elapsed, span, metadata, code, status)
                if error is not None:
                    await context.abort(*error)
                assert result is not None
                return response_to_proto(result)
        finally:
            if in_flight is not None:
                in_flight.dec()

    async def _decide(
        self, request: Any
    ) -> tuple[RateLimitRequestData | None, RateLimitResult | None, _Error | None]:
        """The request, the answer, or the gRPC error to end the call with."""
        try:
            data = request_from_proto(request)
        except BadRequest as error:
            return None, None, _status(error)
        limiter = self._limiter_provider()
        if limiter is None:
            return data, None, _status(QuotaUnavailable("rate limiting is not configured"))
        try:
            with tracing.child_span("ratelimit.store"):
                return data, await limiter.should_rate_limit(data), None
        except StoreUnavailable as error:
            # Fast and explicit, so Envoy's failure_mode_deny decides what clients get.
            return data, None, _status(error, "rate limit store unavailable: ")


def _status(error: AuthzError, prefix: str = "") -> _Error:
    """The gRPC status errors.py maps `error` to, with its message."""
    return grpc.StatusCode[error.grpc_status], f"{prefix}{error}"


def add_ratelimit_servicer(
    server: grpc.aio.Server, limiter_provider: LimiterProvider, telemetry: Reporter | None = None
) -> RateLimitServicer:
    servicer = RateLimitServicer(limiter_provider, telemetry)
    rls_pb2_grpc.add_RateLimitServiceServicer_to_server(servicer, server)
    return servicer
