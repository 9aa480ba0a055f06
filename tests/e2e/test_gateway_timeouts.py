"""envoy/envoy.yaml's timeouts through a real Envoy, shortened to 1 s for the test run: a
client that never finishes its headers is cut off, and an upstream that never answers is a
504. Neither holds a connection (or a worker) open for long."""

from __future__ import annotations

import socket
import ssl
import threading
import time
from collections.abc import Iterator

import pytest

from tests.e2e.conftest import Stack, running_stack, trusting

pytestmark = pytest.mark.envoy

TIMEOUT_S = 1.0


@pytest.fixture(scope="module")
def hanging_upstream() -> Iterator[int]:
    """Accepts connections and reads requests, but never answers."""
    server = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                connection, _ = server.accept()
            except TimeoutError:
                continue
            held.append(connection)

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield int(server.getsockname()[1])
    finally:
        stop.set()
        thread.join(timeout=5)
        for connection in held:
            connection.close()
        server.close()


@pytest.fixture(scope="module")
def impatient(
    tmp_path_factory: pytest.TempPathFactory, envoy_available: str, hanging_upstream: int
) -> Iterator[Stack]:
    values = {
        "REQUEST_HEADERS_TIMEOUT": f"{TIMEOUT_S}s",
        "UPSTREAM_TIMEOUT": f"{TIMEOUT_S}s",
        "UPSTREAM_PORT": hanging_upstream,
    }
    with running_stack(tmp_path_factory.mktemp("timeouts"), envoy_values=values) as stack:
        yield stack


def test_an_upstream_that_never_answers_is_a_504_after_the_route_timeout(
    impatient: Stack,
) -> None:
    with impatient.client() as client:
        started = time.monotonic()
        response = client.get(impatient.public_url + "/public/page")  # anonymous: allowed
        waited = time.monotonic() - started

    assert response.status_code == 504, response.text
    assert "upstream request timeout" in response.text
    assert TIMEOUT_S <= waited < TIMEOUT_S + 3


def test_a_client_that_never_finishes_its_headers_is_cut_off(impatient: Stack) -> None:
    host, _, port = impatient.public_url.removeprefix("https://").partition(":")
    context = trusting(impatient.ca_file)
    with (
        socket.create_connection((host, int(port)), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        tls.sendall(b"GET /public/page HTTP/1.1\r\nHost: localhost\r\nX-Slow: ")
        started = time.monotonic()
        try:
            answer = tls.recv(4096)
        except (ConnectionResetError, ssl.SSLError):
            answer = b""
        waited = time.monotonic() - started

    # Envoy answers 408 and closes (or just closes): either way, not after the client's 10 s.
    assert answer == b"" or answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert waited < TIMEOUT_S + 3
