"""The HTTP check endpoint (its own port): Envoy http_service, NGINX auth_request, Traefik
forwardAuth. Translate the subrequest, call the Check use case, translate the answer back.

Every request is a check: the path picks the integration (its mount in `http_check.endpoints`)
and nothing is read from the body. A subrequest that lacks what its integration must send is
denied (fail closed), like an unreadable CheckRequest on the gRPC path.
"""

from __future__ import annotations

import logging
import time

from aiohttp import web

from authz_service.http.check_translate import (
    REQUEST_TRANSLATORS,
    HttpReply,
    ReceivedRequest,
    UnreadableRequest,
    allow_reply,
    deny_reply,
    endpoint_for,
    join_headers,
)
from authz_service.http.settings import HttpCheckSettings, Integration
from authz_service.model import Decision, Outcome, Reason
from authz_service.services.check import CheckService
from authz_service.telemetry import tracing
from authz_service.telemetry.observer import Telemetry
from authz_service.workers import split_listen

log = logging.getLogger(__name__)

SPAN_SERVICE = "authz_service.HttpCheck"
METRIC_LABEL = "HttpCheck"
# Bearer tokens may be up to jwt_providers[].max_token_bytes (8 KiB by default) and URIs long:
# aiohttp's 8 KiB default would answer 400 before we could decide.
_MAX_FIELD_BYTES = 64 * 1024


class HttpCheckHandler:
    """Thin, like the gRPC servicer: received request -> RequestAttributes -> Decision -> reply."""

    def __init__(
        self, settings: HttpCheckSettings, checks: CheckService, telemetry: Telemetry
    ) -> None:
        self._settings = settings
        self._checks = checks
        self._telemetry = telemetry
        self._in_flight = 0

    def update(self, settings: HttpCheckSettings) -> None:
        """Reloaded settings (trusted proxies, endpoints, limits) for the next request."""
        self._settings = settings

    async def handle(self, request: web.Request) -> web.Response:
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
        return self._deny(endpoint.integration, decision)

    async def check(self, received: ReceivedRequest) -> HttpReply:
        endpoint = endpoint_for(received.target, self._settings.endpoints)
        if endpoint is None:
            return HttpReply(404, {"content-type": "text/plain"}, "no check endpoint here\n")
        integration = endpoint.integration
        deny_body_header = self._settings.nginx.deny_body_header
        started = time.perf_counter()
        telemetry = self._telemetry
        traceparent = received.headers.get("traceparent")
        metadata = [("traceparent", traceparent)] if traceparent else None
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
                    return self._bad_request(integration, str(error))
                except Exception:
                    log.exception("%s check request could not be read; denying", integration)
                    return self._bad_request(integration, "request could not be read")
                decision, runtime = await self._checks.check(attributes)
                if decision.allowed:
                    reply = allow_reply(integration, runtime.responses.allow(decision))
                else:
                    reply = deny_reply(
                        integration, runtime.responses.deny(decision), deny_body_header
                    )
                telemetry.check_done(
                    attributes, decision, time.perf_counter() - started, span, metadata
                )
                if span.is_recording():
                    span.set_attribute("http.response.status_code", reply.status)
                return reply
        finally:
            if metrics is not None:
                metrics.in_flight.labels(METRIC_LABEL).dec()

    def _bad_request(self, integration: Integration, message: str) -> HttpReply:
        return self._deny(integration, Decision(Outcome.FORBIDDEN, Reason.BAD_REQUEST, message))

    def _deny(self, integration: Integration, decision: Decision) -> HttpReply:
        deny = self._checks.runtime().responses.deny(decision)
        return deny_reply(integration, deny, self._settings.nginx.deny_body_header)


class HttpCheckServer:
    """The aiohttp app on `http_check.listen`; `start()` then `stop()`."""

    def __init__(
        self,
        settings: HttpCheckSettings,
        checks: CheckService,
        telemetry: Telemetry,
        grace_period_s: float = 5.0,
    ) -> None:
        self.settings = settings
        self._grace_period_s = grace_period_s
        self._handler = HttpCheckHandler(settings, checks, telemetry)
        self._runner: web.AppRunner | None = None
        self.port = 0

    def update(self, settings: HttpCheckSettings) -> None:
        """Apply a reloaded `http_check:` section; `listen` stays as bound at start."""
        self._handler.update(settings)

    def app(self) -> web.Application:
        app = web.Application(
            handler_args={"max_field_size": _MAX_FIELD_BYTES, "max_line_size": _MAX_FIELD_BYTES}
        )
        app.router.add_route("*", "/{tail:.*}", self._handler.handle)
        return app

    async def start(self, listen: str | None = None) -> None:
        host, port = split_listen(listen or self.settings.listen)
        # On stop, checks in flight get the server's grace period to finish.
        self._runner = web.AppRunner(
            self.app(), access_log=None, shutdown_timeout=self._grace_period_s
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, host.strip("[]"), port)
        await site.start()
        sockets = getattr(site._server, "sockets", None) or []
        self.port = int(sockets[0].getsockname()[1]) if sockets else port
        log.info("HTTP check endpoint on %s:%s", host, self.port)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
