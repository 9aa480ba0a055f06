"""HTTPS on the public listener, HTTP redirected, and Envoy -> authz_service over TLS."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
import yaml
from envoy.service.auth.v3 import external_auth_pb2, external_auth_pb2_grpc

from tests.e2e.conftest import Gateway, Stack, running_stack, trusting

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


def serve_with_mutual_tls(workdir: Path) -> Callable[[dict[str, Any]], None]:
    """Service config: TLS on the gRPC port, only the gateway's certificate accepted."""

    def edit(config: dict[str, Any]) -> None:
        tls = workdir / "tls"
        config["server"]["tls"] = {
            "cert_file": str(tls / "authz.crt"),
            "key_file": str(tls / "authz.key"),
            "client_ca_file": str(tls / "ca.crt"),
            "allowed_client_sans": ["gateway"],
        }

    return edit


@pytest.fixture(scope="module")
def tls_to_authz(tmp_path_factory: pytest.TempPathFactory, envoy_available: str) -> Iterator[Stack]:
    """AUTHZ_TLS=true: Envoy calls authz_service over mutual TLS."""
    workdir = tmp_path_factory.mktemp("authz-tls")
    with running_stack(
        workdir, edit_config=serve_with_mutual_tls(workdir), envoy_values={"AUTHZ_TLS": "true"}
    ) as stack:
        yield stack


def test_envoy_calls_the_service_over_mutual_tls(tls_to_authz: Stack) -> None:
    stack = tls_to_authz
    token = stack.idp.mint("alice", roles=["editor"])
    with stack.client() as client:
        allowed = client.get(
            stack.public_url + "/api/orders", headers={"authorization": f"Bearer {token}"}
        )
        denied = client.get(stack.public_url + "/api/orders")

    assert allowed.status_code == 200, allowed.text
    assert allowed.json()["headers"]["x-user-id"] == "alice"
    assert denied.status_code == 401
    assert denied.headers["x-authz-reason"] == "authentication_required"


def test_the_service_port_refuses_a_plaintext_client(tls_to_authz: Stack) -> None:
    config = yaml.safe_load(tls_to_authz.config_path.read_text())
    request = external_auth_pb2.CheckRequest()
    with (
        grpc.insecure_channel(config["server"]["listen"]) as channel,
        pytest.raises(grpc.RpcError) as refused,
    ):
        external_auth_pb2_grpc.AuthorizationStub(channel).Check(request, timeout=3)

    assert refused.value.code() is grpc.StatusCode.UNAVAILABLE


def test_a_service_certificate_for_another_name_fails_closed(
    tmp_path_factory: pytest.TempPathFactory, envoy_available: str
) -> None:
    workdir = tmp_path_factory.mktemp("authz-tls-wrong-name")
    values = {"AUTHZ_TLS": "true", "AUTHZ_TLS_SERVER_NAME": "someone-else"}
    with running_stack(
        workdir, edit_config=serve_with_mutual_tls(workdir), envoy_values=values
    ) as stack:
        token = stack.idp.mint("alice", roles=["editor"])
        with stack.client() as client:
            response = client.get(
                stack.public_url + "/api/orders", headers={"authorization": f"Bearer {token}"}
            )

    assert response.status_code == 503  # the service's identity is not the expected one
