"""envoy.service.ratelimit.v3.RateLimitService on grpc.aio: translate, decide, translate back."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc
from envoy.service.ratelimit.v3 import rls_pb2_grpc

from authz_service.grpc.ratelimit_messages import BadRequest, request_from_proto, response_to_proto
from authz_service.ratelimit.limiter import RateLimiter
from authz_service.ratelimit.store import StoreUnavailable

LimiterProvider = Callable[[], RateLimiter | None]


class RateLimitServicer(rls_pb2_grpc.RateLimitServiceServicer):  # type: ignore[misc]
    def __init__(self, limiter_provider: LimiterProvider) -> None:
        # Looked up per call, so a config reload swaps the limiter under live traffic.
        self._limiter_provider = limiter_provider

    async def ShouldRateLimit(
        self, request: Any, context: grpc.aio.ServicerContext[Any, Any]
    ) -> Any:
        try:
            data = request_from_proto(request)
        except BadRequest as error:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(error))
        limiter = self._limiter_provider()
        if limiter is None:
            await context.abort(
                grpc.StatusCode.FAILED_PRECONDITION, "rate limiting is not configured"
            )
        assert limiter is not None
        try:
            result = await limiter.should_rate_limit(data)
        except StoreUnavailable as error:
            # Fast and explicit, so Envoy's failure_mode_deny decides what the client gets.
            await context.abort(
                grpc.StatusCode.UNAVAILABLE, f"rate limit store unavailable: {error}"
            )
        return response_to_proto(result)


def add_ratelimit_servicer(
    server: grpc.aio.Server, limiter_provider: LimiterProvider
) -> RateLimitServicer:
    servicer = RateLimitServicer(limiter_provider)
    rls_pb2_grpc.add_RateLimitServiceServicer_to_server(servicer, server)
    return servicer
