"""envoy.service.auth.v3.Authorization: translate, call the Check use case, translate back."""

from __future__ import annotations

import logging
import time

import grpc
from envoy.service.auth.v3 import external_auth_pb2, external_auth_pb2_grpc
from google.protobuf.message import DecodeError

from authz_service.decisions import Decision, Outcome, Reason, RequestAttributes
from authz_service.grpc.allow_cache import AllowResponseCache
from authz_service.grpc.check_translate import (
    deny_response,
    refused_request_attributes,
    request_attributes,
)
from authz_service.schema import AuditSettings, RequestLimits, TelemetrySettings
from authz_service.services.check import CheckService
from authz_service.services.request_limits import RequestTooLarge
from authz_service.telemetry import tracing
from authz_service.telemetry.reporter import UNREADABLE_REQUEST, Reporter

log = logging.getLogger(__name__)


SERVICE_NAME = external_auth_pb2.DESCRIPTOR.services_by_name["Authorization"].full_name


class AuthorizationServicer(external_auth_pb2_grpc.AuthorizationServicer):  # type: ignore[misc]
    def __init__(self, checks: CheckService, telemetry: Reporter | None = None):
        self._checks = checks
        self._allow_responses = AllowResponseCache()
        self._telemetry = telemetry or Reporter(
            TelemetrySettings(audit=AuditSettings(enabled=False))
        )

    async def Check(
        self, request: external_auth_pb2.CheckRequest | None, context: grpc.aio.ServicerContext
    ) -> external_auth_pb2.CheckResponse:
        started = time.perf_counter()
        telemetry = self._telemetry
        metadata = context.invocation_metadata() if telemetry.wants_metadata else None
        metrics = telemetry.metrics
        if metrics is not None:
            metrics.check_in_flight.inc()
        try:
            with tracing.server_span(SERVICE_NAME, "Check", metadata) as span:
                limits = self._checks.compiled_config().loaded.config.request_limits
                attributes, refusal = _read(request, limits)
                if refusal is not None:
                    # Denied like any other answer: counted, audited, traced.
                    decision, compiled = refusal, self._checks.compiled_config()
                else:
                    decision, compiled = await self._checks.check(attributes)
                # Recorded before answering: the audit log may turn an allow into a refusal.
                decision = telemetry.check_done(
                    attributes, decision, time.perf_counter() - started, span, metadata
                )
                if decision.allowed:
                    response = self._allow_responses.response(compiled, decision, attributes)
                else:
                    response = deny_response(decision.outcome, compiled.responses.deny(decision))
                if span.is_recording():
                    span.set_attribute("rpc.grpc.status_code", 0)  # denials are answers too
                return response
        except Exception:
            # A bug past the decision: gRPC answers UNKNOWN and Envoy fails closed (503).
            log.exception("Check failed after deciding")
            if metrics is not None:
                metrics.rpc_errors.labels("Check", "UNKNOWN").inc()
            raise
        finally:
            if metrics is not None:
                metrics.check_in_flight.dec()


def _read(
    request: external_auth_pb2.CheckRequest | None, limits: RequestLimits
) -> tuple[RequestAttributes, Decision | None]:
    """The request's attributes, or what stands for them with the refusal to answer."""
    if request is None:
        log.warning("CheckRequest is not a valid protobuf message; denying")
        return UNREADABLE_REQUEST, _UNREADABLE
    try:
        return request_attributes(request, limits), None
    except RequestTooLarge as error:
        refusal = Decision(Outcome.FORBIDDEN, Reason.REQUEST_TOO_LARGE, str(error))
        return refused_request_attributes(request), refusal
    except Exception:
        log.exception("unreadable CheckRequest; denying")
        return UNREADABLE_REQUEST, _UNREADABLE


_UNREADABLE = Decision(Outcome.FORBIDDEN, Reason.BAD_REQUEST, "request could not be read")


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
