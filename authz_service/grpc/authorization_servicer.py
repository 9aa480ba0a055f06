"""envoy.service.auth.v3.Authorization: a CheckRequest in, a CheckResponse out.

Only the translation lives here (`ExtAuthzTransport`); reading, deciding, reporting and
failing closed are services/check_use_case.py's, shared with the other transports.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any, TypeAlias

import grpc
from envoy.service.auth.v3 import external_auth_pb2, external_auth_pb2_grpc
from google.protobuf.message import DecodeError
from opentelemetry.trace import Span

from authz_service.decisions import Decision, RequestAttributes
from authz_service.errors import RequestRefused, RequestTooLarge, UnreadableRequest
from authz_service.grpc.check_translate import (
    allow_response,
    deny_response,
    refused_request_attributes,
    request_attributes,
)
from authz_service.schema import AuditSettings, RequestLimits, TelemetrySettings
from authz_service.services.allow_cache import AllowAnswerCache
from authz_service.services.check import CheckService
from authz_service.services.check_use_case import CheckUseCase, Metadata
from authz_service.services.compiled_config import CompiledConfig
from authz_service.services.sanitise import UNREADABLE_REQUEST
from authz_service.telemetry.reporter import Reporter

SERVICE_NAME = external_auth_pb2.DESCRIPTOR.services_by_name["Authorization"].full_name
METRIC_LABEL = "Check"

# A CheckRequest, or None when its bytes did not parse (see `_parse`). The generated
# protobuf classes are untyped.
Wire: TypeAlias = Any


class ExtAuthzTransport:
    """CheckRequest <-> core types, for services/check_use_case.py."""

    span_service = SERVICE_NAME
    span_method = "Check"
    span_attributes = None

    def __init__(self) -> None:
        self._allow_responses = AllowAnswerCache(allow_response)

    def metadata(self, context: grpc.aio.ServicerContext) -> Metadata | None:
        return context.invocation_metadata()  # type: ignore[no-any-return]

    def read(self, wire: Wire, limits: RequestLimits) -> RequestAttributes:
        if wire is None:
            raise UnreadableRequest("request could not be read")
        return request_attributes(wire, limits)

    def refused(self, wire: Wire, error: RequestRefused) -> RequestAttributes:
        if isinstance(error, RequestTooLarge) and wire is not None:
            return refused_request_attributes(wire)
        return UNREADABLE_REQUEST

    def answer(
        self,
        wire: Wire,
        decision: Decision,
        compiled: CompiledConfig,
        request: RequestAttributes,
    ) -> external_auth_pb2.CheckResponse:
        if decision.allowed:
            return self._allow_responses.answer(compiled, decision, request)
        return deny_response(decision.outcome, compiled.responses.deny(decision))

    def describe(self, span: Span, answer: external_auth_pb2.CheckResponse) -> None:
        span.set_attribute("rpc.grpc.status_code", 0)  # denials are answers too


class AuthorizationServicer(external_auth_pb2_grpc.AuthorizationServicer):  # type: ignore[misc]
    def __init__(self, checks: CheckService, telemetry: Reporter | None = None):
        reporter = telemetry or Reporter(TelemetrySettings(audit=AuditSettings(enabled=False)))
        use_case = CheckUseCase(checks, reporter, METRIC_LABEL)
        # Check(request, context) is the seam's own call with this transport bound: no
        # coroutine of its own between gRPC and the seam.
        self.Check: Callable[
            [Wire, grpc.aio.ServicerContext], Awaitable[external_auth_pb2.CheckResponse]
        ] = functools.partial(use_case.check, ExtAuthzTransport())


def _parse(data: bytes) -> external_auth_pb2.CheckRequest | None:
    """None for bytes that are no CheckRequest: the servicer denies them like any request.

    With the generated deserializer gRPC itself would answer UNKNOWN, before the servicer
    could count or audit anything."""
    try:
        return external_auth_pb2.CheckRequest.FromString(data)
    except DecodeError:
        return None


def add_authorization_servicer(servicer: AuthorizationServicer, server: grpc.aio.Server) -> None:
    """Register Check, parsing requests with `_parse` (see there)."""
    check = grpc.unary_unary_rpc_method_handler(
        servicer.Check,
        request_deserializer=_parse,
        response_serializer=external_auth_pb2.CheckResponse.SerializeToString,
    )
    handlers = grpc.method_handlers_generic_handler(SERVICE_NAME, {"Check": check})
    server.add_generic_rpc_handlers((handlers,))
