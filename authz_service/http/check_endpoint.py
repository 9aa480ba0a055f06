"""The HTTP check endpoint (its own port): Envoy http_service, NGINX auth_request, Traefik
forwardAuth. Translate the subrequest, call the Check use case, translate the answer back.

Every request is a check: the path picks the integration (its mount in `http_check.endpoints`)
and nothing is read from the body. A subrequest that lacks what its integration must send is
denied (fail closed), like an unreadable CheckRequest on the gRPC path.
"""

from __future__ import annotations

import itertools
import logging
import time
from dataclasses import replace

from aiohttp import web
from opentelemetry.trace import Span

from authz_service.decisions import Decision, Outcome, Reason, RequestAttributes
from authz_service.errors import UnreadableRequest
from authz_service.http.check_translate import (
    REQUEST_TRANSLATORS,
    HttpReply,
    ReceivedRequest,
    allow_reply,
    deny_reply,
    endpoint_for,
    join_headers,
)
from authz_service.http.guarded_listener import GuardedListener
from authz_service.schema import HttpCheckSettings, Integration, RequestLimits, split_listen
from authz_service.services.check import CheckService
from authz_service.services.request_limits import (
    RequestTooLarge,
    check_head_size,
    check_header_count,
)
from authz_service.telemetry import tracing
from authz_service.telemetry.connection_metrics import ConnectionStats
from authz_service.telemetry.reporter import UNREADABLE_REQUEST, Reporter

log = logging.getLogger(__name__)

SPAN_SERVICE = "authz_service.HttpCheck"
METRIC_LABEL = "HttpCheck"
# Bearer tokens may be up to jwt_providers[].max_token_bytes (8 KiB by default) and URIs long:
# aiohttp's 8 KiB default would answer 400 before we could decide.
_MAX_FIELD_BYTES = 64 * 1024
# What the audit line and span of a refused request show: never more than this of a field.
_SHOWN = 256


def parser_max_headers(limits: RequestLimits) -> int:
    """The parser's own bound (a 400 past it): twice request_limits.max_headers, so that an
    over-count request is read and denied 431 like on the gRPC path, while memory stays
    bounded (aiohttp keeps every header until the head ends)."""
    return 2 * limits.max_headers


class HttpCheckHandler:
    """Thin, like the gRPC servicer: received request -> RequestAttributes -> Decision -> reply."""

    def __init__(
        self, settings: HttpCheckSettings, checks: CheckService, telemetry: Reporter
    ) -> None:
        self._settings = settings
        self._checks = checks
        self._telemetry = telemetry
        self._in_flight = 0

    def update(self, settings: HttpCheckSettings) -> None:
        """Reloaded settings (trusted proxies, endpoints, limits) for the next request."""
        self._settings = settings

    async def handle(self, request: web.Request) -> web.Response:
        limits = self._checks.compiled_config().loaded.config.request_limits
        try:
            # Measured on what the parser kept (bounded by parser_max_headers), before the
            # header map is built: the gRPC path's check, for the same 431 deny.
            check_header_count(len(request.raw_headers), limits)
            check_head_size((*itertools.chain(*request.raw_headers), request.raw_path), limits)
        except RequestTooLarge as error:
            reply = self._too_large(request, str(error))
            return web.Response(
                status=reply.status, headers=reply.headers, body=reply.body.encode()
            )
        received = ReceivedRequest(
            method=request.method,
            target=request.raw_path,
            headers=join_headers(request.headers.items()),
            peer=request.remote or "",
        )
        limit = self._settings.max_concurrent_requests
        if limit is not None and self._in_flight >= limit:
            reply = self._overloaded(received)
        else:
            self._in_flight += 1
            try:
                reply = await self.check(received)
            finally:
                self._in_flight -= 1
        return web.Response(status=reply.status, headers=reply.headers, body=reply.body.encode())

    def _overloaded(self, received: ReceivedRequest) -> HttpReply:
        endpoint = endpoint_for(received.target, self._settings.endpoints)
        if endpoint is None:
            return HttpReply(404, {"content-type": "text/plain"}, "no check endpoint here\n")
        decision = Decision(
            Outcome.UNAVAILABLE,
            Reason.OVERLOADED,
            "too many checks in flight",
            extra_headers={"retry-after": "1"},
        )
        # Shed without a span (cheap on purpose), but counted and audited like any answer.
        self._telemetry.check_done(
            _unreadable(received), decision, 0.0, tracing.INVALID_SPAN, _metadata(received)
        )
        return self._deny(endpoint.integration, decision)

    async def check(self, received: ReceivedRequest) -> HttpReply:
        endpoint = endpoint_for(received.target, self._settings.endpoints)
        if endpoint is None:
            return HttpReply(404, {"content-type": "text/plain"}, "no check endpoint here\n")
        integration = endpoint.integration
        deny_body_header = self._settings.nginx.deny_body_header
        started = time.perf_counter()
        telemetry = self._telemetry
        metadata = _metadata(received)
        metrics = telemetry.metrics
        if metrics is not None:
            metrics.in_flight.labels(METRIC_LABEL).inc()
        try:
            with tracing.server_span(
                SPAN_SERVICE, integration, metadata, {"rpc.system": "http"}
            ) as span:
                try:
                    attributes = REQUEST_TRANSLATORS[integration](
                        received, endpoint, self._settings
                    )
                except UnreadableRequest as error:
                    log.warning("unreadable %s check request (%s); denying", integration, error)
                    return self._bad_request(received, integration, str(error), span, started)
                except Exception:
                    log.exception("%s check request could not be read; denying", integration)
                    message = "request could not be read"
                    return self._bad_request(received, integration, message, span, started)
                decision, compiled = await self._checks.check(attributes)
                # Recorded before answering: the audit log may turn an allow into a refusal.
                decision = telemetry.check_done(
                    attributes, decision, time.perf_counter() - started, span, metadata
                )
                if decision.allowed:
                    reply = allow_reply(integration, compiled.responses.allow(decision, attributes))
                else:
                    reply = deny_reply(
                        integration, compiled.responses.deny(decision), deny_body_header
                    )
                if span.is_recording():
                    span.set_attribute("http.response.status_code", reply.status)
                return reply
        finally:
            if metrics is not None:
                metrics.in_flight.labels(METRIC_LABEL).dec()

    def _too_large(self, request: web.Request, message: str) -> HttpReply:
        started = time.perf_counter()
        endpoint = endpoint_for(request.raw_path, self._settings.endpoints)
        if endpoint is None:
            return HttpReply(404, {"content-type": "text/plain"}, "no check endpoint here\n")
        decision = Decision(Outcome.FORBIDDEN, Reason.REQUEST_TOO_LARGE, message)
        # Counted and audited like any decision, with the head cut short: its headers unread.
        shown = RequestAttributes(
            method=request.method[:_SHOWN],
            host=(request.host or "")[:_SHOWN],
            path=request.raw_path[:_SHOWN],
            source_address=request.remote or "",
        )
        with tracing.server_span(
            SPAN_SERVICE, endpoint.integration, None, {"rpc.system": "http"}
        ) as span:
            self._telemetry.check_done(shown, decision, time.perf_counter() - started, span, None)
        return self._deny(endpoint.integration, decision)

    def _bad_request(
        self,
        received: ReceivedRequest,
        integration: Integration,
        message: str,
        span: Span,
        started: float,
    ) -> HttpReply:
        decision = Decision(Outcome.FORBIDDEN, Reason.BAD_REQUEST, message)
        self._telemetry.check_done(
            _unreadable(received),
            decision,
            time.perf_counter() - started,
            span,
            _metadata(received),
        )
        return self._deny(integration, decision)

    def _deny(self, integration: Integration, decision: Decision) -> HttpReply:
        deny = self._checks.compiled_config().responses.deny(decision)
        return deny_reply(integration, deny, self._settings.nginx.deny_body_header)


def _metadata(received: ReceivedRequest) -> list[tuple[str, str]] | None:
    """Envoy's trace context, as the gRPC path gets it in its metadata."""
    traceparent = received.headers.get("traceparent")
    return [("traceparent", traceparent)] if traceparent else None


def _unreadable(received: ReceivedRequest) -> RequestAttributes:
    """What the audit line of a request that was not translated says: its id, if any."""
    request_id = received.headers.get("x-request-id", "")
    return replace(UNREADABLE_REQUEST, request_id=request_id) if request_id else UNREADABLE_REQUEST


class HttpCheckServer:
    """The aiohttp app on `http_check.listen`; `start()` then `stop()`."""

    def __init__(
        self,
        settings: HttpCheckSettings,
        checks: CheckService,
        telemetry: Reporter,
        grace_period_s: float = 5.0,
    ) -> None:
        self.settings = settings
        self._grace_period_s = grace_period_s
        self._checks = checks
        self._handler = HttpCheckHandler(settings, checks, telemetry)
        self._runner: web.AppRunner | None = None
        self.stats = ConnectionStats("http_check")
        self._listener = GuardedListener(settings.connections, self.stats)
        self.port = 0

    def update(self, settings: HttpCheckSettings) -> None:
        """Apply a reloaded `http_check:` section; `listen` stays as bound at start."""
        self._handler.update(settings)

    def app(self) -> web.Application:
        limits = self._checks.compiled_config().loaded.config.request_limits
        app = web.Application(
            middlewares=[self._listener.middleware],
            handler_args={
                "max_field_size": _MAX_FIELD_BYTES,
                "max_line_size": _MAX_FIELD_BYTES,
                "max_headers": parser_max_headers(limits),
            },
        )
        app.router.add_route("*", "/{tail:.*}", self._handler.handle)
        return app

    async def start(self, listen: str | None = None) -> None:
        host, port = split_listen(listen or self.settings.listen)
        # On stop, checks in flight get the server's grace period to finish; idle kept-alive
        # connections are closed after idle_timeout_s (aiohttp's keep-alive timeout).
        self._runner = web.AppRunner(
            self.app(),
            access_log=None,
            shutdown_timeout=self._grace_period_s,
            keepalive_timeout=self.settings.connections.idle_timeout_s,
        )
        await self._runner.setup()
        self.port = await self._listener.start(self._runner, host.strip("[]"), port)
        log.info("HTTP check endpoint on %s:%s", host, self.port)

    async def stop(self) -> None:
        await self._listener.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
