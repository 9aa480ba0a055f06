"""HTTPS on the public listener, HTTP redirected, and Envoy -> authz_service over TLS."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import httpx
import pytest

from tests.e2e.conftest import Gateway, Stack, running_stack, trusting
from tests.e2e.gateway import TlsTerminator

pytestmark = pytest.mark.envoy


@pytest.fixture
def stack(gateway: Gateway) -> Stack:
    """The shared gateway stack (its spy answers OK): one set of processes for these modules."""
    return gateway.stack


def test_the_public_listener_serves_https_with_the_development_certificate(
    stack: Stack,
) -> None:
    token = stack.idp.mint("alice", roles=["editor"])
    with stack.client() as client:
        response = client.get(
            stack.public_url + "/api/orders", headers={"authorization": f"Bearer {token}"}
        )

    assert response.status_code == 200, response.text
    assert response.json()["headers"]["x-forwarded-proto"] == "https"


def test_an_untrusted_client_fails_the_handshake(stack: Stack) -> None:
    with httpx.Client(timeout=5) as client, pytest.raises(httpx.ConnectError):
        client.get(stack.public_url + "/healthz")  # the system CAs do not know the dev CA


def test_tls_is_modern_and_http2_is_offered(stack: Stack) -> None:
    context = trusting(stack.ca_file)
    context.set_alpn_protocols(["h2", "http/1.1"])
    port = int(stack.public_url.rsplit(":", 1)[1])
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        assert tls.version() in {"TLSv1.2", "TLSv1.3"}
        assert tls.selected_alpn_protocol() == "h2"


def test_plain_http_is_redirected_to_https(stack: Stack) -> None:
    with httpx.Client(timeout=5) as client:
        response = client.get(stack.http_url + "/api/orders?page=2")

    assert response.status_code == 308
    assert response.headers["location"] == f"{stack.public_url}/api/orders?page=2"
    assert "version" not in response.text  # nothing was proxied over plain HTTP


@pytest.fixture(scope="module")
def tls_to_authz(
    tmp_path_factory: pytest.TempPathFactory, envoy_available: str
) -> Iterator[tuple[Stack, TlsTerminator]]:
    """AUTHZ_TLS=true: Envoy reaches authz_service through TLS (a terminator stands in)."""
    workdir = tmp_path_factory.mktemp("authz-tls")
    terminators: list[TlsTerminator] = []

    def front(authz_port: int) -> int:
        tls = workdir / "tls"
        terminators.append(TlsTerminator(tls / "authz.crt", tls / "authz.key", authz_port))
        return terminators[0].port

    try:
        with running_stack(workdir, front=front, envoy_values={"AUTHZ_TLS": "true"}) as stack:
            yield stack, terminators[0]
    finally:
        for terminator in terminators:
            terminator.close()


def test_envoy_can_call_the_service_over_tls(tls_to_authz: tuple[Stack, TlsTerminator]) -> None:
    stack, terminator = tls_to_authz
    token = stack.idp.mint("alice", roles=["editor"])
    with stack.client() as client:
        allowed = client.get(
            stack.public_url + "/api/orders", headers={"authorization": f"Bearer {token}"}
        )
        denied = client.get(stack.public_url + "/api/orders")

    assert allowed.status_code == 200, allowed.text
    assert allowed.json()["headers"]["x-user-id"] == "alice"
    assert denied.status_code == 401
    assert terminator.handshakes >= 1


def test_a_service_certificate_for_another_name_fails_closed(
    tmp_path_factory: pytest.TempPathFactory, envoy_available: str
) -> None:
    workdir = tmp_path_factory.mktemp("authz-tls-wrong-name")
    terminators: list[TlsTerminator] = []

    def front(authz_port: int) -> int:
        tls = workdir / "tls"
        terminators.append(TlsTerminator(tls / "authz.crt", tls / "authz.key", authz_port))
        return terminators[0].port

    values = {"AUTHZ_TLS": "true", "AUTHZ_TLS_SERVER_NAME": "someone-else"}
    try:
        with running_stack(workdir, front=front, envoy_values=values) as stack:
            token = stack.idp.mint("alice", roles=["editor"])
            with stack.client() as client:
                response = client.get(
                    stack.public_url + "/api/orders",
                    headers={"authorization": f"Bearer {token}"},
                )
    finally:
        for terminator in terminators:
            terminator.close()

    assert response.status_code == 503  # the service's identity is not the expected one
