"""An aiohttp app's listening socket with a connection cap and a request-head deadline.

aiohttp bounds the idle time between requests (keepalive_timeout) but not how long a client
may take to send a request head: a client trickling one byte a second held its socket (and a
descriptor) forever. Each accepted connection is wrapped here:

- past `max_connections` open ones, a new connection is closed as soon as it is accepted
  (the client sees the close; a gateway fails closed), counted as refused;
- a request head must be complete within `header_timeout_s` of the connection opening or of
  the first byte of the next request; otherwise the connection is closed, counted as timed out.

The app must use `listener.middleware` so that the listener learns when a head is complete.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import cast

from aiohttp import web

from authz_service.schema import ConnectionLimits
from authz_service.telemetry.connection_metrics import ConnectionStats

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class _GuardedConnection(asyncio.Protocol):
    """Wraps aiohttp's protocol for one connection: it only adds the cap and the deadline."""

    def __init__(self, listener: GuardedListener, inner: asyncio.Protocol) -> None:
        self._listener = listener
        self._inner: asyncio.Protocol | None = inner
        self._transport: asyncio.Transport | None = None
        self._deadline: asyncio.TimerHandle | None = None
        self._in_request = False

    def connection_made(self, base_transport: asyncio.BaseTransport) -> None:
        listener = self._listener
        # A stream transport (uvloop's TCPTransport is one without subclassing asyncio's).
        transport = cast(asyncio.Transport, base_transport)
        if len(listener.connections) >= listener.limits.max_connections:
            listener.stats.refused += 1
            self._inner = None
            transport.abort()
            return
        self._transport = transport
        listener.connections[transport] = self
        listener.stats.open = len(listener.connections)
        self._arm()
        assert self._inner is not None
        self._inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if self._deadline is None and not self._in_request:
            self._arm()  # the first bytes of the next request on a kept-alive connection
        if self._inner is not None:
            self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received() if self._inner is not None else None

    def pause_writing(self) -> None:
        if self._inner is not None:
            self._inner.pause_writing()

    def resume_writing(self) -> None:
        if self._inner is not None:
            self._inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        listener = self._listener
        if self._transport is not None:
            listener.connections.pop(self._transport, None)
            listener.stats.open = len(listener.connections)
        if self._inner is not None:
            self._inner.connection_lost(exc)

    def head_complete(self) -> None:
        self._in_request = True
        self._disarm()

    def request_done(self) -> None:
        self._in_request = False

    def _arm(self) -> None:
        loop = asyncio.get_running_loop()
        self._deadline = loop.call_later(self._listener.limits.header_timeout_s, self._expire)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expire(self) -> None:
        self._deadline = None
        if self._transport is not None and not self._in_request:
            self._listener.stats.timed_out += 1
            self._transport.close()


class GuardedListener:
    """Serves `runner`'s app on host:port under `limits`; `start()`, then `close()`."""

    def __init__(self, limits: ConnectionLimits, stats: ConnectionStats) -> None:
        self.limits = limits
        self.stats = stats
        self.connections: dict[asyncio.BaseTransport, _GuardedConnection] = {}
        self._server: asyncio.Server | None = None

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        connection = self.connections.get(request.transport) if request.transport else None
        if connection is None:
            return await handler(request)
        connection.head_complete()
        try:
            return await handler(request)
        finally:
            connection.request_done()

    async def start(self, runner: web.AppRunner, host: str, port: int) -> int:
        """Listen (after `runner.setup()`); the port actually bound."""
        factory = runner.server
        assert factory is not None, "runner.setup() first"
        self._server = await asyncio.get_running_loop().create_server(
            lambda: _GuardedConnection(self, factory()),
            host,
            port,
            reuse_address=True,
            backlog=self.limits.backlog,
        )
        return int(self._server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        """Stop accepting; open connections are left to the runner's graceful shutdown."""
        if self._server is not None:
            self._server.close()
            self._server = None
