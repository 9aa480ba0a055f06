"""What the servicers report after each RPC: metrics, span attributes, the audit line.

One object per process, built from `telemetry:` settings at start. Every part is optional:
with tracing off, no metrics port and no audit log, recording costs a few flag checks. Every
check transport reports through services/check_use_case.py, which calls `check_done` once
per answer and `rpc_failed` for an error past the decision.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from opentelemetry.trace import Span, Status, StatusCode
from prometheus_client import Gauge

from authz_service.decisions import Decision, Outcome, Reason, RequestAttributes
from authz_service.ratelimit.results import RateLimitRequestData, RateLimitResult
from authz_service.schema import TelemetrySettings
from authz_service.telemetry import tracing
from authz_service.telemetry.audit_log import AuditLog
from authz_service.telemetry.metrics import AuditLogCollector, Metrics


def audit_refusal(decision: Decision) -> Decision:
    """The answer to a request allowed by policy but not recordable (fail closed)."""
    return Decision(
        Outcome.UNAVAILABLE,
        Reason.AUDIT_UNAVAILABLE,
        "audit log unavailable",
        policy=decision.policy,
        rule=decision.rule,
        extra_headers={"retry-after": "1"},
    )


def trace_ids_from_metadata(metadata: Sequence[tuple[str, Any]] | None) -> tuple[str, str]:
    """Envoy's trace and span ids from `traceparent`, for the audit log when tracing is off."""
    for key, value in metadata or ():
        if key == "traceparent" and isinstance(value, str):
            parts = value.split("-")
            if len(parts) == 4 and len(parts[1]) == 32 and len(parts[2]) == 16:
                return parts[1], parts[2]
    return "", ""


def _audit_trace_ids(metadata: Sequence[tuple[str, Any]] | None) -> tuple[str, str]:
    """The decision span's ids (tracing on), or those of Envoy's traceparent (tracing off)."""
    if tracing.enabled:
        return tracing.current_trace_ids()
    return trace_ids_from_metadata(metadata)


class Reporter:
    def __init__(
        self,
        settings: TelemetrySettings,
        metrics: Metrics | None = None,
        audit: AuditLog | None = None,
    ) -> None:
        """`audit`: the audit log to write to (default: one built from `settings.audit`)."""
        self.metrics = metrics
        self.audit = audit if audit is not None else AuditLog(settings.audit)
        if metrics is not None:
            metrics.add_state_collector(AuditLogCollector(self.audit))

    def in_flight_gauge(self, rpc: str) -> Gauge | None:
        """`authz_rpc_in_flight{rpc}`, resolved once by the caller; None without metrics."""
        return self.metrics.in_flight.labels(rpc) if self.metrics is not None else None

    def rpc_failed(self, rpc: str, code: str) -> None:
        """An RPC that ended in an error status `code` (a gRPC status name)."""
        if self.metrics is not None:
            self.metrics.rpc_errors.labels(rpc, code).inc()

    @property
    def wants_metadata(self) -> bool:
        """Whether the servicer should read the gRPC metadata (trace context)."""
        return tracing.enabled or self.audit.enabled

    def check_done(
        self,
        request: RequestAttributes,
        decision: Decision,
        duration_s: float,
        span: Span,
        metadata: Sequence[tuple[str, Any]] | None,
    ) -> Decision:
        """Audit, count and describe a decision before it is answered; returns the decision
        to answer: an allow whose audit record cannot be kept under `when_full: refuse` is
        refused instead (503 audit_unavailable)."""
        identity = decision.identity
        audited = self.audit.enabled
        recording = span.is_recording()
        # As audit lines and spans show it (maybe hashed); worked out only when one does.
        principal = (
            tracing.principal_attribute(identity.principal)
            if identity is not None and (audited or recording)
            else None
        )
        if audited:
            decision = self._audit_check(request, decision, duration_s, principal, metadata)
        if self.metrics is not None:
            self.metrics.check_duration.observe(duration_s)
            self.metrics.decision_counter(decision).inc()
            self.metrics.observe_shadow(decision)
        if recording:
            span.set_attributes(
                {
                    "client.address": request.source_address,
                    "http.request.method": request.method,
                    "server.address": request.host,
                    "authz.decision": decision.outcome.value,
                    "authz.reason": decision.reason.value,
                    "authz.policy": decision.policy,
                    "authz.rule": decision.rule,
                }
            )
            shadow = decision.shadow
            if shadow is not None:
                span.set_attributes(
                    {
                        "authz.shadow.decision": shadow.outcome.value,
                        "authz.shadow.reason": shadow.reason.value,
                        "authz.shadow.rule": shadow.rule,
                        "authz.shadow.policy": shadow.policy,
                        "authz.shadow.agrees": shadow.agrees_with(decision),
                    }
                )
            if principal is not None and decision.identity is not None:
                span.set_attribute("enduser.id", principal)
            if decision.outcome is Outcome.UNAVAILABLE:
                span.set_status(Status(StatusCode.ERROR, decision.reason.value))
        return decision

    def _audit_check(
        self,
        request: RequestAttributes,
        decision: Decision,
        duration_s: float,
        principal: str | None,
        metadata: Sequence[tuple[str, Any]] | None,
    ) -> Decision:
        audit = self.audit
        trace_id, span_id = _audit_trace_ids(metadata)
        if audit.record(request, decision, duration_s, trace_id, span_id, principal):
            return decision
        # Dropped (and counted). A denial already refuses; an allow may not pass unaudited.
        if not (audit.refuses_when_full and decision.allowed):
            return decision
        refused = audit_refusal(decision)
        audit.record(request, refused, duration_s, trace_id, span_id, None)
        return refused

    def rate_limit_done(
        self,
        request: RateLimitRequestData | None,
        result: RateLimitResult | None,
        duration_s: float,
        span: Span,
        metadata: Sequence[tuple[str, Any]] | None = None,
        error_code: str = "",
        error_status: int = 0,
    ) -> None:
        """After every ShouldRateLimit, answered or not (`request` None: it was unreadable).

        `error_code`/`error_status`: the gRPC status the call ends with, by name and number
        ("UNAVAILABLE", 14); "" and 0 when it is answered. The transport knows gRPC; we don't.
        """
        domain = request.domain if request is not None else ""
        if self.metrics is not None:
            self.metrics.rpc_duration.labels("ShouldRateLimit").observe(duration_s)
            if result is not None:
                self.metrics.observe_rate_limit(domain, result)
            if error_code:
                self.metrics.rpc_errors.labels("ShouldRateLimit", error_code).inc()
        # An answer, or the store failing to give one, is a decision worth a line.
        if self.audit.enabled and request is not None and (result or error_code == "UNAVAILABLE"):
            trace_id, span_id = _audit_trace_ids(metadata)
            self.audit.record_rate_limit(
                domain, request.descriptors, result, duration_s, trace_id, span_id
            )
        if not span.is_recording():
            return
        span.set_attribute("rpc.grpc.status_code", error_status)
        if error_code:  # an unreadable request (no domain to name) included
            span.set_status(Status(StatusCode.ERROR, error_code))
        if request is not None:
            keys = sorted({key for d in request.descriptors for key, _ in d.entries})
            span.set_attribute("authz.ratelimit.domain", domain)
            span.set_attribute("authz.ratelimit.descriptor_keys", keys)
        if result is not None:
            span.set_attribute("authz.ratelimit.code", result.overall_code.value)
            tripped = result.tripped
            if tripped:
                span.set_attribute("authz.ratelimit.tripped", tripped)

    def close(self) -> None:
        self.audit.close()
        tracing.shutdown()
