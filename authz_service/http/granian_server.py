"""The HTTP check endpoint served by granian (`http_check.server: granian`), in this process's
event loop: granian's Rust HTTP stack parses and writes, the ASGI app of asgi_app.py calls
the same HttpCheckHandler as the aiohttp server. `start()` then `stop()`, like HttpCheckServer.

`http_check.connections` as granian's options allow (tests/integration/transport/
test_granian_connections.py pins each against the real server):

- `max_connections` is granian's `backpressure`: each open connection holds a slot, and past
  the cap a new connection is not accepted until one closes (it waits in the listen backlog,
  where aiohttp would accept and close it);
- `backlog` is the listen backlog;
- `header_timeout_s` is HTTP/1's header read timeout, which granian (hyper) also runs while
  a kept-alive connection waits for its next request: idle connections are closed after the
  shorter of it and `idle_timeout_s`. The port speaks HTTP/1.1 only (as on aiohttp; every
  gateway's auth subrequest does): with HTTP/2 detection on, a silent connection was never
  cut off;
- granian owns the sockets: open, refused and timed-out connections are not ours to count,
  so this port has no `authz_connections_*` series.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from typing import Any

from granian.constants import HTTPModes, Interfaces
from granian.http import HTTP1Settings
from granian.server.embed import Server

from authz_service.http.asgi_app import Route, build_asgi_app
from authz_service.http.check_endpoint import HttpCheckHandler
from authz_service.schema import ConnectionLimits, HttpCheckSettings, split_listen
from authz_service.services.check import CheckService
from authz_service.telemetry.connection_metrics import ConnectionStats
from authz_service.telemetry.reporter import Reporter

log = logging.getLogger(__name__)


def free_port(host: str) -> int:
    """A port the kernel hands out now, for `listen: host:0` (granian binds by number)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


async def wait_listening(host: str, port: int, timeout_s: float) -> None:
    """Until a connection to host:port succeeds: granian binds in its worker task."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        try:
            _, writer = await asyncio.open_connection(host, port)
        except OSError:
            if loop.time() > deadline:
                raise
            await asyncio.sleep(0.01)  # polling the condition, not a barrier
            continue
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return


def connection_options(limits: ConnectionLimits) -> dict[str, Any]:
    """granian's options for `http_check.connections` (see the module's docstring)."""
    head_timeout_s = min(limits.header_timeout_s, limits.idle_timeout_s)
    return {
        "backlog": limits.backlog,
        "backpressure": limits.max_connections,
        "http1_settings": HTTP1Settings(
            header_read_timeout=max(1, round(head_timeout_s * 1000)), keep_alive=True
        ),
    }


class GranianCheckServer:
    """The ASGI check app on `http_check.listen`, served by granian."""

    def __init__(
        self,
        settings: HttpCheckSettings,
        checks: CheckService,
        telemetry: Reporter,
        grace_period_s: float = 5.0,
    ) -> None:
        self.settings = settings
        self._grace_period_s = grace_period_s
        self.handler = HttpCheckHandler(settings, checks, telemetry)
        # granian owns the sockets: connection counts are not ours to see here.
        self.stats: ConnectionStats | None = None
        self._server: Server | None = None
        self._task: asyncio.Task[None] | None = None
        self.port = 0

    def update(self, settings: HttpCheckSettings) -> None:
        """Apply a reloaded `http_check:` section; `listen` stays as bound at start."""
        self.handler.update(settings)

    def routes(self) -> list[Route]:
        """Every path is a check (the handler answers 404 off its mounts)."""
        return [Route("/", self.handler.reply)]

    async def start(self, listen: str | None = None) -> None:
        host, port = split_listen(listen or self.settings.listen)
        bare_host = host.strip("[]")
        self.port = port or free_port(bare_host)
        self._server = Server(
            build_asgi_app(self.routes()),
            address=bare_host,
            port=self.port,
            interface=Interfaces.ASGINL,
            # HTTP/1.1 only, like the aiohttp server: in granian's auto mode a connection
            # that sends nothing waits for its protocol to be detected with no deadline.
            http=HTTPModes.http1,
            websockets=False,
            log_enabled=False,
            **connection_options(self.settings.connections),
        )
        self._task = asyncio.create_task(self._server.serve())
        await wait_listening(bare_host, self.port, timeout_s=10.0)
        log.info("HTTP check endpoint (granian) on %s:%s", host, self.port)

    async def stop(self) -> None:
        if self._server is not None and self._task is not None:
            self._server.stop()  # type: ignore[no-untyped-call]  # granian's embed API is untyped
            try:
                await asyncio.wait_for(self._task, self._grace_period_s + 1.0)
            except (TimeoutError, Exception):
                log.warning("granian did not stop within the grace period")
        self._server = None
        self._task = None
