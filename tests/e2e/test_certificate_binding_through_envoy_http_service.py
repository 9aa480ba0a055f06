"""Certificate-bound tokens (RFC 8705) through the real Envoy in ext_authz `http_service` mode:
Envoy terminates TLS asking for a client certificate and sets `x-forwarded-client-cert`
(SANITIZE_SET: a client's own XFCC is dropped), the example's allowed_headers forward it, and
the service, told to trust XFCC from loopback, compares its `Hash=` with the token's
`cnf.x5t#S256`. Tokens come from the real authorization server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.e2e.conftest import trusting
from tests.e2e.credentials import PATH, in_order, trusting_issuer
from tests.e2e.http_gateways import GatewayStack, running_gateway
from tests.e2e.test_envoy_http_service import EXAMPLE, envoy_config
from tests.support import find_binary
from tests.support.authorization_server import AUDIENCE, AuthorizationServer
from tests.support.client_certs import (
    ClientCertificate,
    ClientCertificateAuthority,
    sha256_hex,
)
from tools.dev_cert import generate as generate_dev_certs
from tools.processes import Process, free_port, spawn, wait_for_port

pytestmark = pytest.mark.envoy

TLS_CONTEXT = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext"


def with_client_certificates(example: dict[str, Any], tls_dir: Path, client_ca: Path) -> None:
    """The example's listener on TLS, asking for (optional) client certificates, and XFCC set
    from the verified certificate (the example's allowed_headers send XFCC to the check)."""
    (listener,) = example["static_resources"]["listeners"]
    chain = listener["filter_chains"][0]
    chain["transport_socket"] = {
        "name": "envoy.transport_sockets.tls",
        "typed_config": {
            "@type": TLS_CONTEXT,
            "require_client_certificate": False,
            "common_tls_context": {
                "tls_certificates": [
                    {
                        "certificate_chain": {"filename": str(tls_dir / "gateway.crt")},
                        "private_key": {"filename": str(tls_dir / "gateway.key")},
                    }
                ],
                "validation_context": {"trusted_ca": {"filename": str(client_ca)}},
            },
        },
    }
    manager = chain["filters"][0]["typed_config"]
    manager["forward_client_cert_details"] = "SANITIZE_SET"
    manager["set_current_client_cert_details"] = {"uri": True}


@pytest.fixture(scope="module")
def client_ca(tmp_path_factory: pytest.TempPathFactory) -> ClientCertificateAuthority:
    return ClientCertificateAuthority(tmp_path_factory.mktemp("xfcc-client-ca"))


@pytest.fixture(scope="module")
def gateway(
    tmp_path_factory: pytest.TempPathFactory,
    authorization_server: AuthorizationServer,
    client_ca: ClientCertificateAuthority,
    envoy_available: str,
) -> Iterator[tuple[GatewayStack, Path]]:
    workdir = tmp_path_factory.mktemp("xfcc-http-service")
    tls_dir = generate_dev_certs(workdir / "tls")

    def start_tls_envoy(where: Path, authz_port: int, upstream_port: int) -> tuple[Process, int]:
        listen = free_port()
        where.mkdir(parents=True, exist_ok=True)
        example = yaml.safe_load(EXAMPLE.read_text())
        with_client_certificates(example, tls_dir, client_ca.ca_file)
        config = where / "envoy.yaml"
        config.write_text(
            envoy_config(example, listen=listen, authz=authz_port, upstream=upstream_port)
        )
        binary = find_binary("envoy")
        envoy = spawn(
            "envoy",
            [binary, "-c", str(config), "--log-level", "warn", "--disable-hot-restart"],
            where,
        )
        wait_for_port(listen, process=envoy.popen)
        return envoy, listen

    def trust_xfcc(config: dict[str, Any]) -> None:
        config["http_check"]["trust_forwarded_client_cert"] = True

    server = authorization_server
    edit = in_order(trusting_issuer(server.issuer, server.jwks_uri, AUDIENCE), trust_xfcc)
    endpoint = {"path": "/envoy", "integration": "envoy", "context": {"policy": "public"}}
    with running_gateway(workdir, endpoint, start_tls_envoy, edit=edit) as stack:
        yield stack, tls_dir / "ca.crt"


def bearer_call(
    gateway: tuple[GatewayStack, Path],
    token: str,
    certificate: ClientCertificate | None,
    **headers: str,
) -> httpx.Response:
    stack, ca_file = gateway
    verify = certificate.ssl_context(ca_file) if certificate else trusting(ca_file)
    url = stack.url.replace("http://", "https://") + PATH
    with httpx.Client(verify=verify, timeout=10.0) as client:
        return client.get(url, headers={"authorization": f"Bearer {token}", **headers})


def test_a_certificate_bound_token_from_its_certificate_passes_on_the_http_transport(
    gateway: tuple[GatewayStack, Path],
    authorization_server: AuthorizationServer,
    client_ca: ClientCertificateAuthority,
) -> None:
    workload = client_ca.issue("xfcc-workload")
    token = authorization_server.token("mtls-client", certificate=workload.certificate)
    response = bearer_call(gateway, token, workload)
    assert response.status_code == 200, gateway[0].logs()
    assert response.json()["headers"]["x-user-id"] == "mtls-client"


def test_a_certificate_bound_token_from_another_certificate_is_refused_on_the_http_transport(
    gateway: tuple[GatewayStack, Path],
    authorization_server: AuthorizationServer,
    client_ca: ClientCertificateAuthority,
) -> None:
    workload = client_ca.issue("xfcc-bound")
    token = authorization_server.token("mtls-client", certificate=workload.certificate)
    response = bearer_call(gateway, token, client_ca.issue("xfcc-other"))
    assert response.status_code == 401, gateway[0].logs()
    assert response.headers["x-authz-reason"] == "certificate_mismatch"


def test_a_client_writing_its_own_xfcc_cannot_claim_the_bound_certificate(
    gateway: tuple[GatewayStack, Path],
    authorization_server: AuthorizationServer,
    client_ca: ClientCertificateAuthority,
) -> None:
    workload = client_ca.issue("xfcc-victim")
    token = authorization_server.token("mtls-client", certificate=workload.certificate)
    forged = f"Hash={sha256_hex(workload.certificate)}"  # what Envoy would have written
    response = bearer_call(gateway, token, None, **{"x-forwarded-client-cert": forged})
    assert response.status_code == 401, gateway[0].logs()
    assert response.headers["x-authz-reason"] == "certificate_mismatch"
