"""One check call, from any transport: read it, decide it, report it, answer it.

A transport (the gRPC Check servicer, the HTTP check endpoint, the Lambda authorizer) only
supplies a `CheckTransport`: how to read its wire format into `RequestAttributes`, and how
to write a `Decision` back. Everything else lives here, once:

- fail closed: a request that cannot be read, is too large or is shed for overload is
  refused (errors.py maps each to its decision), and the Check use case denies on its own
  errors (services/check.py);
- report every way out alike: each answer, refusals included, goes through
  `Reporter.check_done` (decision metrics, span attributes, the audit line) before it is
  answered; an error past the decision is logged and counted in
  `authz_rpc_errors_total{rpc, code}`, then left to the transport's framework (gRPC answers
  UNKNOWN, aiohttp 500, Lambda a failed invocation: each a deny at the gateway);
- `authz_rpc_in_flight{rpc}` and the shedding limit, counted in one place.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any, Protocol, TypeVar

from opentelemetry.trace import Span

from authz_service.decisions import Decision, Outcome, Reason, RequestAttributes
from authz_service.errors import (
    Overloaded,
    RequestRefused,
    UnreadableRequest,
    grpc_status_of,
)
from authz_service.schema import RequestLimits
from authz_service.services.check import CheckService
from authz_service.services.compiled_config import CompiledConfig
from authz_service.telemetry import tracing
from authz_service.telemetry.reporter import Reporter

log = logging.getLogger(__name__)

Metadata = Sequence[tuple[str, Any]]
Wire = TypeVar("Wire", contravariant=True)
Context = TypeVar("Context", contravariant=True)
Answer = TypeVar("Answer")


class CheckTransport(Protocol[Wire, Context, Answer]):
    """A transport's part of a check: its wire format to the core and back. Long-lived (one
    per transport, or per HTTP endpoint), so a call allocates nothing for it."""

    # The SERVER span of one call: its service and method names, and attributes beside them.
    @property
    def span_service(self) -> str: ...
    @property
    def span_method(self) -> str: ...
    @property
    def span_attributes(self) -> Mapping[str, Any] | None: ...

    def metadata(self, context: Context) -> Metadata | None:
        """The caller's trace context (`traceparent`), asked only when tracing or the audit
        log wants it: gRPC metadata, or the HTTP subrequest's headers."""

    def read(self, wire: Wire, limits: RequestLimits) -> RequestAttributes:
        """The request as policy sees it. Raises RequestRefused (errors.py) for a request
        it will not read: too large before its headers are built, unreadable."""

    def refused(self, wire: Wire, error: RequestRefused) -> RequestAttributes:
        """What the audit line and span of a request refused unread show (services/sanitise)."""

    def answer(
        self,
        wire: Wire,
        decision: Decision,
        compiled: CompiledConfig,
        request: RequestAttributes,
    ) -> Answer:
        """The decision in the transport's wire format, built with `compiled`'s responses."""

    def describe(self, span: Span, answer: Answer) -> None:
        """Span attributes of the answer (called only when the span records)."""


def refusal(error: RequestRefused) -> Decision:
    """The decision a refused request is answered and reported with (errors.py's mapping)."""
    retry_after = error.retry_after_s
    return Decision(
        Outcome(error.outcome),
        Reason(error.reason),
        str(error),
        extra_headers={"retry-after": str(retry_after)} if retry_after is not None else {},
    )


# Never raised: they name a refusal, and the transports say what such a request shows.
_SHED = Overloaded("too many checks in flight")
_UNREADABLE = UnreadableRequest("request could not be read")


class CheckUseCase:
    def __init__(
        self,
        checks: CheckService,
        reporter: Reporter,
        rpc: str,
        max_in_flight: int | None = None,
    ) -> None:
        """`rpc`: the transport's name in metrics and logs. `max_in_flight`: checks beyond
        it are shed (503 overloaded); None: no limit here (gRPC bounds it itself)."""
        self._checks = checks
        self._reporter = reporter
        self.rpc = rpc
        self.max_in_flight = max_in_flight
        self._in_flight = 0
        self._gauge = reporter.in_flight_gauge(rpc)

    async def check(
        self, transport: CheckTransport[Wire, Context, Answer], wire: Wire, context: Context
    ) -> Answer:
        """One call: `wire` the request as received, `context` what the transport finds the
        trace context in (the gRPC call's context, the HTTP request, nothing)."""
        started = time.perf_counter()
        metadata = transport.metadata(context) if self._reporter.wants_metadata else None
        try:
            limit = self.max_in_flight
            if limit is not None and self._in_flight >= limit:
                # Shed before any work and without a span, cheap on purpose; still reported.
                return self._refuse(transport, wire, _SHED, tracing.INVALID_SPAN, metadata, started)
            self._in_flight += 1
            gauge = self._gauge
            if gauge is not None:
                gauge.inc()
            try:
                with tracing.server_span(
                    transport.span_service,
                    transport.span_method,
                    metadata,
                    transport.span_attributes,
                ) as span:
                    limits = self._checks.compiled_config().loaded.config.request_limits
                    try:
                        request = transport.read(wire, limits)
                    except RequestRefused as error:
                        if isinstance(error, UnreadableRequest):
                            log.warning("unreadable %s request (%s); denying", self.rpc, error)
                        return self._refuse(transport, wire, error, span, metadata, started)
                    except Exception:
                        log.exception("%s request could not be read; denying", self.rpc)
                        return self._refuse(transport, wire, _UNREADABLE, span, metadata, started)
                    evaluation = await self._checks.check(request)
                    # Reported before answering: the audit log may turn an allow into a refusal.
                    decision = self._reporter.check_done(
                        request, evaluation.decision, time.perf_counter() - started, span, metadata
                    )
                    answer = transport.answer(wire, decision, evaluation.compiled, request)
                    if span.is_recording():
                        transport.describe(span, answer)
                    return answer
            finally:
                self._in_flight -= 1
                if gauge is not None:
                    gauge.dec()
        except Exception as error:
            log.exception("%s failed after deciding", self.rpc)
            self._reporter.rpc_failed(self.rpc, grpc_status_of(error))
            raise

    def _refuse(
        self,
        transport: CheckTransport[Wire, Any, Answer],
        wire: Wire,
        error: RequestRefused,
        span: Span,
        metadata: Metadata | None,
        started: float,
    ) -> Answer:
        """A request refused unread, reported and answered like a decided one (above)."""
        request = transport.refused(wire, error)
        elapsed = time.perf_counter() - started
        decision = self._reporter.check_done(request, refusal(error), elapsed, span, metadata)
        answer = transport.answer(wire, decision, self._checks.compiled_config(), request)
        if span.is_recording():
            transport.describe(span, answer)
        return answer
