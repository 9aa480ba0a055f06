"""envoy.service.auth.v3.Authorization: translate, call the Check use case, translate back."""

from __future__ import annotations

import logging
import time

import grpc
from envoy.service.auth.v3 import external_auth_pb2, external_auth_pb2_grpc

from authz_service.config.model import AuditSettings, TelemetrySettings
from authz_service.grpc.allow_cache import AllowResponseCache
from authz_service.grpc.check_translate import (
    deny_response,
    refused_request_attributes,
    request_attributes,
)
from authz_service.model import Decision, Outcome, Reason
from authz_service.request_limits import RequestTooLarge
from authz_service.services.check import CheckService
from authz_service.telemetry import tracing
from authz_service.telemetry.observer import Telemetry

log = logging.getLogger(__name__)


SERVICE_NAME = external_auth_pb2.DESCRIPTOR.services_by_name["Authorization"].full_name


class AuthorizationServicer(external_auth_pb2_grpc.AuthorizationServicer):  # type: ignore[misc]
    def __init__(self, checks: CheckService, telemetry: Telemetry | None = None):
        self._checks = checks
        self._allow_responses = AllowResponseCache()
        self._telemetry = telemetry or Telemetry(
            TelemetrySettings(audit=AuditSettings(enabled=False))
        )

    async def Check(
        self, request: external_auth_pb2.CheckRequest, context: grpc.aio.ServicerContext
    ) -> external_auth_pb2.CheckResponse:
        started = time.perf_counter()
        telemetry = self._telemetry
        metadata = context.invocation_metadata() if telemetry.wants_metadata else None
        metrics = telemetry.metrics
        if metrics is not None:
            metrics.check_in_flight.inc()
        try:
            with tracing.server_span(SERVICE_NAME, "Check", metadata) as span:
                limits = self._checks.runtime().loaded.config.request_limits
                try:
                    attributes = request_attributes(request, limits)
                except RequestTooLarge as error:
                    decision = Decision(Outcome.FORBIDDEN, Reason.REQUEST_TOO_LARGE, str(error))
                    telemetry.check_done(
                        refused_request_attributes(request),
                        decision,
                        time.perf_counter() - started,
                        span,
                        metadata,
                    )
                    responses = self._checks.runtime().responses
                    return deny_response(decision.outcome, responses.deny(decision))
                except Exception:
                    log.exception("unreadable CheckRequest; denying")
                    decision = Decision(
                        Outcome.FORBIDDEN, Reason.BAD_REQUEST, "request could not be read"
                    )
                    responses = self._checks.runtime().responses
                    return deny_response(decision.outcome, responses.deny(decision))
                decision, runtime = await self._checks.check(attributes)
                if decision.allowed:
                    response = self._allow_responses.response(runtime, decision)
                else:
                    response = deny_response(decision.outcome, runtime.responses.deny(decision))
                telemetry.check_done(
                    attributes, decision, time.perf_counter() - started, span, metadata
                )
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
