"""`http_check.connections` on the granian server (`http_check.server: granian`): what granian's
options let us enforce, against the real server in-process (http/granian_server.py).

A silent or trickling client is cut off after `header_timeout_s`; so is a kept-alive
connection left idle (granian runs one deadline for both). Past `max_connections`, a new
connection is not served until an open one closes. The aiohttp versions are in
test_slow_clients.py.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any

from tests.integration.grpc.conftest import service_config
from tests.integration.transport.test_slow_clients import (
    HEADER_TIMEOUT_S,
    TRICKLE_FOR_S,
    trickle_until_closed,
)
from tests.support.authz_server import Start
from tools.dev_idp import DevIdentityProvider

REQUEST = b"GET /envoy/public/x HTTP/1.1\r\nhost: api.local\r\n\r\n"


async def granian_port(start: Start, idp: DevIdentityProvider, **connections: Any) -> int:
    config = service_config(idp, watch=False)
    config["http_check"] = {
        "listen": "127.0.0.1:0",
        "server": "granian",
        "connections": connections,
    }
    server = await start(config)
    assert server.http_check is not None
    return server.http_check.port


async def closed_by_server(reader: asyncio.StreamReader) -> bool:
    """Reads until the server closes (True), or TRICKLE_FOR_S pass without it (False)."""
    try:
        async with asyncio.timeout(TRICKLE_FOR_S):
            while await reader.read(1024):
                pass
    except TimeoutError:
        return False
    except ConnectionError:
        return True
    return True


async def test_a_client_trickling_its_head_to_granian_is_cut_off_after_the_header_timeout(
    start: Start, idp: DevIdentityProvider
) -> None:
    port = await granian_port(start, idp, header_timeout_s=HEADER_TIMEOUT_S)

    closed_after = await trickle_until_closed(port, "/envoy/api/orders")

    assert closed_after is not None, "the trickling client was never cut off"
    assert closed_after >= HEADER_TIMEOUT_S * 0.9


async def test_a_silent_connection_to_granian_is_closed(
    start: Start, idp: DevIdentityProvider
) -> None:
    port = await granian_port(start, idp, header_timeout_s=HEADER_TIMEOUT_S)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        assert await closed_by_server(reader)
    finally:
        writer.close()


async def test_an_idle_kept_alive_connection_to_granian_is_closed_after_an_answer(
    start: Start, idp: DevIdentityProvider
) -> None:
    port = await granian_port(start, idp, header_timeout_s=60, idle_timeout_s=HEADER_TIMEOUT_S)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(REQUEST)
        status_line = await reader.readline()
        assert status_line.startswith(b"HTTP/1.1 200"), status_line
        assert await closed_by_server(reader)
    finally:
        writer.close()


def answered(sock: socket.socket, timeout_s: float) -> bytes:
    sock.settimeout(timeout_s)
    try:
        return sock.recv(1024)
    except TimeoutError:
        return b""


async def test_past_max_connections_granian_serves_a_new_connection_only_once_one_closes(
    start: Start, idp: DevIdentityProvider
) -> None:
    port = await granian_port(start, idp, max_connections=2, header_timeout_s=60)
    loop = asyncio.get_running_loop()
    held = [socket.create_connection(("127.0.0.1", port)) for _ in range(2)]
    waiting = socket.create_connection(("127.0.0.1", port))
    try:
        for sock in held:  # both answered, and kept alive: each holds its slot
            sock.sendall(REQUEST)
            first = await loop.run_in_executor(None, answered, sock, 10.0)
            assert first.startswith(b"HTTP/1.1 200"), first
        waiting.sendall(REQUEST)
        while_full = await loop.run_in_executor(None, answered, waiting, 1.0)
        held.pop().close()
        once_one_closed = await loop.run_in_executor(None, answered, waiting, 10.0)
    finally:
        for sock in (*held, waiting):
            sock.close()
    assert while_full == b""
    assert once_one_closed.startswith(b"HTTP/1.1 200"), once_one_closed
