"""The HTTP check endpoint (its own port): Envoy http_service, NGINX auth_request, Traefik
forwardAuth. Translate the subrequest, call the Check use case, translate the answer back.

Every request is a check: the path picks the integration (its mount in `http_check.endpoints`)
and nothing is read from the body. A subrequest that lacks what its integration must send is
denied (fail closed), like an unreadable CheckRequest on the gRPC path. Only the translation
lives here (`HttpCheckTransport`, one per endpoint); reading, deciding, reporting, shedding
and failing closed are services/check_use_case.py's, shared with the other transports.
"""

from __future__ import annotations

import functools
import itertools
import logging
from dataclasses import dataclass

from aiohttp import web
from opentelemetry.trace import Span

from authz_service.decisions import Decision, RequestAttributes
from authz_service.errors import RequestRefused, RequestTooLarge
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
from authz_service.schema import Endpoint, HttpCheckSettings, RequestLimits, split_listen
from authz_service.services.allow_cache import AllowAnswerCache
from authz_service.services.authzen import (
    EVALUATION_PATH,
    MAX_BODY_BYTES,
    METADATA_PATH,
    AccessEvaluationUseCase,
    AuthzenTransport,
    metadata_document,
)
from authz_service.services.check import CheckService
from authz_service.services.check_use_case import CheckUseCase, Metadata
from authz_service.services.compiled_config import CompiledConfig
from authz_service.services.request_limits import check_head_size, check_header_count
from authz_service.services.sanitise import refused_head, unreadable_request
from authz_service.telemetry.connection_metrics import ConnectionStats
from authz_service.telemetry.reporter import Reporter

log = logging.getLogger(__name__)

SPAN_SERVICE = "authz_service.HttpCheck"
METRIC_LABEL = "HttpCheck"
# Bearer tokens may be up to jwt_providers[].max_token_bytes (8 KiB by default) and URIs long:
# aiohttp's 8 KiB default would answer 400 before we could decide.
_MAX_FIELD_BYTES = 64 * 1024
_SPAN_ATTRIBUTES = {"rpc.system": "http"}
_NOT_HERE = HttpReply(404, {"content-type": "text/plain"}, "no check endpoint here\n")


def parser_max_headers(limits: RequestLimits) -> int:
    """The parser's own bound (a 400 past it): twice request_limits.max_headers, so that an
    over-count request is read and denied 431 like on the gRPC path, while memory stays
    bounded (aiohttp keeps every header until the head ends)."""
    return 2 * limits.max_headers


@dataclass(frozen=True, slots=True)
class Subrequest:
    """The subrequest as any HTTP server (aiohttp, granian's ASGI) hands it over: what the
    transport reads, whatever web framework received it."""

    method: str
    raw_path: str  # the request target as sent: path and query, not decoded
    raw_headers: tuple[tuple[str, str], ...]  # as received, names in any case
    remote: str  # the socket peer's address
    body: bytes = b""  # read only for a route that asks for it (a check never does)

    def header(self, name: str) -> str | None:
        """The first value of a header (`name` lower-case)."""
        for key, value in self.raw_headers:
            if key.lower() == name:
                return value
        return None

    @classmethod
    def from_aiohttp(cls, request: web.Request) -> Subrequest:
        return cls(
            request.method,
            request.raw_path,
            tuple(request.headers.items()),
            request.remote or "",
        )


class HttpCheckTransport:
    """One endpoint's subrequests <-> core types, for services/check_use_case.py."""

    span_service = SPAN_SERVICE
    span_attributes = _SPAN_ATTRIBUTES

    def __init__(self, endpoint: Endpoint, settings: HttpCheckSettings) -> None:
        self._endpoint = endpoint
        self._settings = settings
        self._integration = endpoint.integration
        self._translate = REQUEST_TRANSLATORS[endpoint.integration]
        self._allow_replies = AllowAnswerCache(functools.partial(allow_reply, endpoint.integration))
        self.span_method = endpoint.integration

    def metadata(self, context: Subrequest) -> Metadata | None:
        """Envoy's trace context, as the gRPC path gets it in its metadata."""
        traceparent = context.header("traceparent")
        return [("traceparent", traceparent)] if traceparent else None

    def read(self, wire: Subrequest, limits: RequestLimits) -> RequestAttributes:
        # Measured on what the parser kept (bounded by parser_max_headers), before the
        # header map is built: the gRPC path's check, for the same 431 deny.
        check_header_count(len(wire.raw_headers), limits)
        check_head_size((*itertools.chain(*wire.raw_headers), wire.raw_path), limits)
        received = ReceivedRequest(
            method=wire.method,
            target=wire.raw_path,
            headers=join_headers(wire.raw_headers),
            peer=wire.remote,
        )
        return self._translate(received, self._endpoint, self._settings)

    def refused(self, wire: Subrequest, error: RequestRefused) -> RequestAttributes:
        if isinstance(error, RequestTooLarge):  # the head, cut short: its headers unread
            host = wire.header("host") or ""
            return refused_head(wire.method, host, wire.raw_path, wire.remote)
        return unreadable_request(wire.header("x-request-id") or "")

    def answer(
        self,
        wire: Subrequest,
        decision: Decision,
        compiled: CompiledConfig,
        request: RequestAttributes,
    ) -> HttpReply:
        if decision.allowed:
            if self._integration != "envoy" and compiled.responses.carries_cookie(request):
                # NGINX and Traefik get the Cookie header back: an answer for this request.
                return allow_reply(self._integration, compiled.responses.allow(decision, request))
            return self._allow_replies.answer(compiled, decision, request)
        deny = compiled.responses.deny(decision)
        return deny_reply(self._integration, deny, self._settings.nginx.deny_body_header)

    def describe(self, span: Span, answer: HttpReply) -> None:
        span.set_attribute("http.response.status_code", answer.status)


class HttpCheckHandler:
    """Thin, like the gRPC servicer: the endpoint's transport and the shared Check use case."""

    def __init__(
        self, settings: HttpCheckSettings, checks: CheckService, telemetry: Reporter
    ) -> None:
        self._use_case = CheckUseCase(checks, telemetry, METRIC_LABEL)
        self._authzen = AccessEvaluationUseCase(
            CheckUseCase(checks, telemetry, "AccessEvaluation"),
            AuthzenTransport(
                settings.authzen, lambda: checks.compiled_config().loaded.config.api_keys.header
            ),
        )
        self.update(settings)

    def update(self, settings: HttpCheckSettings) -> None:
        """Reloaded settings (trusted proxies, endpoints, limits) for the next request."""
        transports: dict[str, HttpCheckTransport] = {}
        for endpoint in settings.endpoints:
            transports.setdefault(endpoint.path, HttpCheckTransport(endpoint, settings))
        self._endpoints = settings.endpoints
        self._transports = transports
        self._use_case.max_in_flight = settings.max_concurrent_requests
        self._authzen.transport.settings = settings.authzen

    async def reply(self, subrequest: Subrequest) -> HttpReply:
        """The answer to one subrequest, whichever server received it."""
        endpoint = endpoint_for(subrequest.raw_path, self._endpoints)
        if endpoint is None:
            return _NOT_HERE  # not a check: nothing to decide, count or audit
        transport = self._transports[endpoint.path]
        return await self._use_case.check(transport, subrequest, subrequest)

    async def handle(self, request: web.Request) -> web.Response:
        reply = await self.reply(Subrequest.from_aiohttp(request))
        return web.Response(status=reply.status, headers=reply.headers, body=reply.body.encode())

    async def access_evaluation(self, request: web.Request) -> web.Response:
        body = await request.content.read(MAX_BODY_BYTES + 1)
        reply = await self._authzen.evaluate(body, request.headers, request.remote or "")
        headers = (
            {"x-request-id": request.headers["x-request-id"]}
            if "x-request-id" in request.headers
            else None
        )
        return web.json_response(reply.body, status=reply.status, headers=headers)

    async def authzen_metadata(self, request: web.Request) -> web.Response:
        return web.json_response(metadata_document(f"{request.scheme}://{request.host}"))


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
        if self.settings.authzen.enabled:  # AuthZEN: services/authzen.py does the work
            app.router.add_post(EVALUATION_PATH, self._handler.access_evaluation)
            app.router.add_get(METADATA_PATH, self._handler.authzen_metadata)
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
