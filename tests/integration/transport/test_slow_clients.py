"""Slow and idle clients cannot hold the service's sockets: every port has a cap and timeouts.

Real sockets against a real in-process server. A client that trickles its request head is cut
off after `header_timeout_s`; past a port's `max_connections`, new connections to that port are
closed at once, while the other ports (the metrics port's /healthz, the gRPC port) still serve.
"""

from __future__ import annotations

import asyncio
import socket
import time
from typing import Any

import grpc
import httpx
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from authz_service.server import AuthzServer
from tests.integration.grpc.conftest import service_config
from tests.support.authz_server import Start
from tests.support.idp import wait_until
from tools.dev_idp import DevIdentityProvider

HEADER_TIMEOUT_S = 1.0
# How long a trickling client keeps going: far past the header timeout, so a cut-off is seen.
TRICKLE_FOR_S = 15.0


def ports_config(idp: DevIdentityProvider, **connections: Any) -> dict[str, Any]:
    config = service_config(idp, watch=False)
    config["http_check"] = {"listen": "127.0.0.1:0", "connections": connections}
    config["telemetry"]["metrics"] = {"listen": "127.0.0.1:0", "connections": connections}
    return config


async def trickle_until_closed(port: int, target: str) -> float | None:
    """Send a request head one byte every 0.1 s; seconds until the server closed, or None.

    One long header value, so that no parser bound (header count, field size) ends it first.
    """
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    started = time.monotonic()
    try:
        writer.write(f"GET {target} HTTP/1.1\r\nhost: a\r\nx-slow: ".encode())
        while True:
            if time.monotonic() - started > TRICKLE_FOR_S:
                return None
            try:
                writer.write(b"a")
                await writer.drain()
                if await _closed_within(reader, 0.1):
                    return time.monotonic() - started
            except ConnectionError:
                return time.monotonic() - started
    finally:
        writer.close()


async def _closed_within(reader: asyncio.StreamReader, seconds: float) -> bool:
    try:
        data = await asyncio.wait_for(reader.read(1024), seconds)
    except TimeoutError:
        return False
    return data == b""


@pytest.mark.parametrize("port_name", ["http_check", "metrics"])
async def test_a_client_trickling_its_request_head_is_cut_off_after_the_header_timeout(
    start: Start, idp: DevIdentityProvider, port_name: str
) -> None:
    server = await start(ports_config(idp, header_timeout_s=HEADER_TIMEOUT_S))
    assert server.http_check is not None
    port, target = (
        (server.http_check.port, "/envoy/api/orders")
        if port_name == "http_check"
        else (server.metrics_port, "/healthz")
    )
    closed_after = await trickle_until_closed(port, target)
    assert closed_after is not None, "the trickling client was never cut off"
    assert closed_after >= HEADER_TIMEOUT_S * 0.9


async def test_a_silent_grpc_connection_is_closed_after_the_handshake_timeout(
    start: Start, idp: DevIdentityProvider
) -> None:
    config = service_config(idp, watch=False)
    config["server"]["connections"] = {"header_timeout_s": HEADER_TIMEOUT_S}
    server = await start(config)
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        # No HTTP/2 preface: grpc answers with its SETTINGS, then must give up on us.
        async with asyncio.timeout(TRICKLE_FOR_S):
            while await reader.read(1024):
                pass
    finally:
        writer.close()


async def http_status(port: int, path: str) -> int | None:
    """One request on a fresh connection; None when the server closed it unanswered."""
    try:
        async with httpx.AsyncClient(timeout=5.0) as client:
            return (await client.get(f"http://127.0.0.1:{port}{path}")).status_code
    except (httpx.RemoteProtocolError, httpx.ReadError, httpx.ConnectError):
        return None


async def test_past_the_connection_cap_new_check_connections_are_closed_while_health_and_grpc_serve(
    start: Start, idp: DevIdentityProvider
) -> None:
    config = service_config(idp, watch=False)
    config["http_check"] = {"listen": "127.0.0.1:0", "connections": {"max_connections": 4}}
    config["telemetry"]["metrics"] = {"listen": "127.0.0.1:0"}
    server = await start(config)
    assert server.http_check is not None
    check_port = server.http_check.port
    held = [socket.create_connection(("127.0.0.1", check_port)) for _ in range(4)]
    try:
        await wait_until(lambda: open_connections(server, "http_check") == 4)
        refused = await http_status(check_port, "/envoy/public/x")
        health = await http_status(server.metrics_port, "/healthz")
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            serving = await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=5
            )
        held.pop().close()
        await wait_until(lambda: open_connections(server, "http_check") == 3)
        after_one_left = await http_status(check_port, "/envoy/public/x")
    finally:
        for sock in held:
            sock.close()
    assert refused is None
    assert health == 200
    assert serving.status == health_pb2.HealthCheckResponse.SERVING
    assert after_one_left == 200
    scraped = await metrics_text(server)
    assert 'authz_connections_refused_total{port="http_check"} 1.0' in scraped


async def test_past_the_grpc_connection_cap_new_grpc_connections_are_refused(
    start: Start, idp: DevIdentityProvider
) -> None:
    config = service_config(idp, watch=False)
    config["server"]["connections"] = {"max_connections": 2, "header_timeout_s": 60}
    server = await start(config)
    held = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(2)]
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await health_pb2_grpc.HealthStub(channel).Check(
                    health_pb2.HealthCheckRequest(), timeout=3
                )
    finally:
        for sock in held:
            sock.close()
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE


def open_connections(server: AuthzServer, port_name: str) -> float:
    value = server.metrics.registry.get_sample_value("authz_connections_open", {"port": port_name})
    return value or 0.0


async def metrics_text(server: AuthzServer) -> str:
    async with httpx.AsyncClient(timeout=5.0) as client:
        return (await client.get(f"http://127.0.0.1:{server.metrics_port}/metrics")).text


async def test_an_idle_grpc_connection_is_closed_after_the_idle_timeout(
    start: Start, idp: DevIdentityProvider
) -> None:
    config = service_config(idp, watch=False)
    config["server"]["connections"] = {"idle_timeout_s": 1}
    server = await start(config)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
        assert channel.get_state() == grpc.ChannelConnectivity.READY
        # The server's GOAWAY takes the channel back to IDLE; it reconnects on the next call.
        await wait_until(
            lambda: channel.get_state() == grpc.ChannelConnectivity.IDLE, within_s=TRICKLE_FOR_S
        )


async def test_a_kept_alive_http_connection_with_no_request_is_closed_after_the_idle_timeout(
    start: Start, idp: DevIdentityProvider
) -> None:
    server = await start(ports_config(idp, idle_timeout_s=1))
    assert server.http_check is not None
    reader, writer = await asyncio.open_connection("127.0.0.1", server.http_check.port)
    try:
        writer.write(b"GET /envoy/public/x HTTP/1.1\r\nhost: a\r\n\r\n")
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 ")
        async with asyncio.timeout(TRICKLE_FOR_S):
            while await reader.read(1024):  # the body, then the close
                pass
    finally:
        writer.close()
