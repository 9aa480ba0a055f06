"""Test doubles that sit beside the real gateway processes, on loopback free ports.

- RateLimitSpy: the gRPC endpoint Envoy's authz_service cluster points at. It forwards
  Authorization/Check, unchanged bytes, to the real authz_service and answers
  RateLimitService/ShouldRateLimit itself, recording the descriptors Envoy built, so a test sees
  exactly what the route's rate_limits actions produce and can make the answer OK, OVER_LIMIT or
  an error.
- SpanReceiver: an OTLP/gRPC trace collector that keeps the spans Envoy exports.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import grpc
from envoy.service.ratelimit.v3 import rls_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

Descriptor = tuple[tuple[str, str], ...]

CHECK_METHOD = "/envoy.service.auth.v3.Authorization/Check"


@dataclass
class RateLimitCall:
    domain: str
    descriptors: list[Descriptor]


@dataclass
class RateLimitSpy:
    """Serves on `port`; Check goes to 127.0.0.1:`authz_port`."""

    authz_port: int
    calls: list[RateLimitCall] = field(default_factory=list)
    # "ok", "over_limit" or "unavailable"; `over_limit_if` narrows "over_limit" to some calls.
    answer: str = "ok"
    over_limit_if: Callable[[list[Descriptor]], bool] = lambda _descriptors: True
    port: int = 0
    checks_forwarded: int = 0  # Check calls seen (none when ext_authz speaks HTTP)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._channel = grpc.insecure_channel(f"127.0.0.1:{self.authz_port}")
        self._check = self._channel.unary_unary(CHECK_METHOD)
        self._server = grpc.server(ThreadPoolExecutor(max_workers=16))
        self._server.add_generic_rpc_handlers(
            [
                grpc.method_handlers_generic_handler(
                    "envoy.service.auth.v3.Authorization",
                    {"Check": grpc.unary_unary_rpc_method_handler(self._forward_check)},
                ),
                grpc.method_handlers_generic_handler(
                    "envoy.service.ratelimit.v3.RateLimitService",
                    {
                        "ShouldRateLimit": grpc.unary_unary_rpc_method_handler(
                            self._should_rate_limit,
                            request_deserializer=rls_pb2.RateLimitRequest.FromString,
                            response_serializer=rls_pb2.RateLimitResponse.SerializeToString,
                        )
                    },
                ),
            ]
        )
        self.port = self._server.add_insecure_port("127.0.0.1:0")

    def start(self) -> RateLimitSpy:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop(0)
        self._channel.close()

    def reset(self, answer: str = "ok") -> None:
        with self._lock:
            self.calls.clear()
            self.answer = answer
            self.over_limit_if = lambda _descriptors: True

    def descriptors(self) -> list[Descriptor]:
        with self._lock:
            return [descriptor for call in self.calls for descriptor in call.descriptors]

    def _forward_check(self, request: bytes, context: grpc.ServicerContext) -> bytes:
        with self._lock:
            self.checks_forwarded += 1
        try:
            response: bytes = self._check(request, timeout=2.0)
        except grpc.RpcError as error:
            context.abort(error.code(), error.details() or "")
        return response

    def _should_rate_limit(
        self, request: Any, context: grpc.ServicerContext
    ) -> rls_pb2.RateLimitResponse:
        descriptors = [
            tuple((entry.key, entry.value) for entry in descriptor.entries)
            for descriptor in request.descriptors
        ]
        with self._lock:
            self.calls.append(RateLimitCall(request.domain, descriptors))
            answer, over_limit_if = self.answer, self.over_limit_if
        if answer == "unavailable":
            context.abort(grpc.StatusCode.UNAVAILABLE, "rate limit store unavailable")
        over = answer == "over_limit" and over_limit_if(descriptors)
        code = rls_pb2.RateLimitResponse.OVER_LIMIT if over else rls_pb2.RateLimitResponse.OK
        limit = rls_pb2.RateLimitResponse.RateLimit(
            requests_per_unit=10, unit=rls_pb2.RateLimitResponse.RateLimit.MINUTE
        )
        statuses = [
            rls_pb2.RateLimitResponse.DescriptorStatus(
                code=code, current_limit=limit, limit_remaining=0 if over else 7
            )
            for _ in descriptors
        ]
        for status in statuses:
            status.duration_until_reset.FromSeconds(42)
        response = rls_pb2.RateLimitResponse(overall_code=code, statuses=statuses)
        if over:
            response.raw_body = b'{"error":"rate_limited","reason":"quota_exceeded"}'
            response.response_headers_to_add.add(key="content-type", value="application/json")
        return response


class SpanReceiver:
    """opentelemetry.proto.collector.trace.v1.TraceService/Export, keeping every span."""

    def __init__(self) -> None:
        self.spans: list[Any] = []
        self._lock = threading.Lock()
        self._server = grpc.server(ThreadPoolExecutor(max_workers=4))
        self._server.add_generic_rpc_handlers(
            [
                grpc.method_handlers_generic_handler(
                    "opentelemetry.proto.collector.trace.v1.TraceService",
                    {
                        "Export": grpc.unary_unary_rpc_method_handler(
                            self._export,
                            request_deserializer=trace_service_pb2.ExportTraceServiceRequest.FromString,
                            response_serializer=trace_service_pb2.ExportTraceServiceResponse.SerializeToString,
                        )
                    },
                )
            ]
        )
        self.port = self._server.add_insecure_port("127.0.0.1:0")
        self._server.start()

    def _export(self, request: Any, context: grpc.ServicerContext) -> Any:
        with self._lock:
            for resource_spans in request.resource_spans:
                # xds-protos ships an older opentelemetry proto where field 2 has its old name.
                groups = getattr(resource_spans, "scope_spans", None)
                if groups is None:
                    groups = resource_spans.instrumentation_library_spans
                for scope_spans in groups:
                    self.spans.extend(scope_spans.spans)
        return trace_service_pb2.ExportTraceServiceResponse()

    def snapshot(self) -> list[Any]:
        with self._lock:
            return list(self.spans)

    def stop(self) -> None:
        self._server.stop(0)


def access_log(envoy_log: str) -> Iterator[dict[str, Any]]:
    """The JSON access-log lines among Envoy's output."""
    for line in envoy_log.splitlines():
        if line.startswith("{"):
            yield json.loads(line)
