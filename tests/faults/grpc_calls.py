"""Building Check and ShouldRateLimit calls against a running service, answered as outcomes."""

from __future__ import annotations

from collections.abc import Mapping

import grpc
from envoy.extensions.common.ratelimit.v3 import ratelimit_pb2
from envoy.service.auth.v3 import external_auth_pb2, external_auth_pb2_grpc
from envoy.service.ratelimit.v3 import rls_pb2, rls_pb2_grpc
from google.rpc import code_pb2


def check_request(
    path: str,
    headers: Mapping[str, str] | None = None,
    *,
    method: str = "GET",
    source: str = "192.0.2.10",
) -> external_auth_pb2.CheckRequest:
    request = external_auth_pb2.CheckRequest()
    http = request.attributes.request.http
    http.method, http.host, http.path = method, "api.example", path
    http.headers.update(headers or {})
    request.attributes.source.address.socket_address.address = source
    request.attributes.context_extensions["policy"] = "public"
    return request


def rls_request(domain: str, *descriptors: list[tuple[str, str]]) -> rls_pb2.RateLimitRequest:
    return rls_pb2.RateLimitRequest(
        domain=domain,
        descriptors=[
            ratelimit_pb2.RateLimitDescriptor(
                entries=[
                    ratelimit_pb2.RateLimitDescriptor.Entry(key=key, value=value)
                    for key, value in entries
                ]
            )
            for entries in descriptors
        ],
        hits_addend=1,
    )


class Client:
    def __init__(self, channel: grpc.aio.Channel, timeout_s: float = 1.0) -> None:
        self._check = external_auth_pb2_grpc.AuthorizationStub(channel)
        self._rls = rls_pb2_grpc.RateLimitServiceStub(channel)
        self.timeout_s = timeout_s

    async def check(self, request: external_auth_pb2.CheckRequest) -> str:
        """Allowed: "ok"; denied: "http <status> <reason>"."""
        response = await self._check.Check(request, timeout=self.timeout_s)
        if response.status.code == code_pb2.OK:
            return "ok"
        reason = next(
            (h.header.value for h in response.denied_response.headers
             if h.header.key == "x-authz-reason"),
            "",
        )  # fmt: skip
        return f"http {response.denied_response.status.code} {reason}"

    async def should_rate_limit(self, request: rls_pb2.RateLimitRequest) -> str:
        response = await self.raw_should_rate_limit(request)
        return rls_pb2.RateLimitResponse.Code.Name(response.overall_code)

    async def raw_should_rate_limit(
        self, request: rls_pb2.RateLimitRequest
    ) -> rls_pb2.RateLimitResponse:
        return await self._rls.ShouldRateLimit(request, timeout=self.timeout_s)
