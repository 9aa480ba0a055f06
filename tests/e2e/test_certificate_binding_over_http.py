"""Certificate-bound tokens (RFC 8705) through Envoy's ext_authz in `http_service` mode, on the
HTTP render of envoy/envoy.yaml: the public listener asks for a client certificate, the render
has Envoy set `x-forwarded-client-cert` from it (SANITIZE_SET: a client's own copy is dropped)
and pass it to the check (allowed_headers), and the service, told to trust XFCC from its
trusted proxies (Envoy on loopback), compares its `Hash=` with the token's `cnf.x5t#S256`.
The gRPC transport's cases are in test_issuer_tokens_through_envoy.py; tokens come from the
real authorization server."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.conftest import Stack, running_stack
from tests.e2e.credentials import (
    asking_for_client_certificates,
    assert_allowed_as,
    assert_refused,
    call,
    in_order,
    trusting_issuer,
)
from tests.support.authorization_server import AUDIENCE, AuthorizationServer
from tests.support.client_certs import ClientCertificateAuthority, sha256_hex

pytestmark = pytest.mark.envoy


@pytest.fixture(scope="module")
def client_ca(tmp_path_factory: pytest.TempPathFactory) -> ClientCertificateAuthority:
    return ClientCertificateAuthority(tmp_path_factory.mktemp("xfcc-client-ca"))


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory,
    authorization_server: AuthorizationServer,
    client_ca: ClientCertificateAuthority,
    envoy_available: str,
) -> Iterator[Stack]:
    def trust_xfcc(config: dict[str, Any]) -> None:
        config["http_check"]["trust_forwarded_client_cert"] = True

    server = authorization_server
    with running_stack(
        tmp_path_factory.mktemp("xfcc-http"),
        transport="http",
        edit_config=in_order(trusting_issuer(server.issuer, server.jwks_uri, AUDIENCE), trust_xfcc),
        edit_envoy=asking_for_client_certificates(client_ca.ca_file),
    ) as stack:
        yield stack


def test_a_certificate_bound_token_from_its_certificate_passes_on_the_http_transport(
    stack: Stack, authorization_server: AuthorizationServer, client_ca: ClientCertificateAuthority
) -> None:
    workload = client_ca.issue("xfcc-workload")
    token = authorization_server.token("mtls-client", certificate=workload.certificate)
    response = call(stack, token, None, scheme="Bearer", certificate=workload)
    assert_allowed_as(response, stack, "mtls-client")


def test_a_certificate_bound_token_from_another_certificate_is_refused_on_the_http_transport(
    stack: Stack, authorization_server: AuthorizationServer, client_ca: ClientCertificateAuthority
) -> None:
    workload = client_ca.issue("xfcc-bound")
    token = authorization_server.token("mtls-client", certificate=workload.certificate)
    other = client_ca.issue("xfcc-other")  # trusted by Envoy, but not the bound one
    response = call(stack, token, None, scheme="Bearer", certificate=other)
    assert_refused(response, "certificate_mismatch")


def test_a_certificate_bound_token_without_a_client_certificate_is_refused_on_the_http_transport(
    stack: Stack, authorization_server: AuthorizationServer, client_ca: ClientCertificateAuthority
) -> None:
    workload = client_ca.issue("xfcc-absent")
    token = authorization_server.token("mtls-client", certificate=workload.certificate)
    assert_refused(call(stack, token, None, scheme="Bearer"), "certificate_mismatch")


@pytest.mark.parametrize("with_own_certificate", [False, True], ids=["no-cert", "other-cert"])
def test_a_client_writing_its_own_xfcc_cannot_claim_the_bound_certificate(
    stack: Stack,
    authorization_server: AuthorizationServer,
    client_ca: ClientCertificateAuthority,
    with_own_certificate: bool,
) -> None:
    workload = client_ca.issue("xfcc-victim")
    token = authorization_server.token("mtls-client", certificate=workload.certificate)
    forged = {"x-forwarded-client-cert": f"Hash={sha256_hex(workload.certificate)}"}
    # With a certificate of its own, a listener appending to the client's XFCC (APPEND_FORWARD)
    # would put the forged element first, where the service reads the hash.
    own = client_ca.issue("xfcc-forger") if with_own_certificate else None
    response = call(stack, token, None, scheme="Bearer", certificate=own, extra_headers=forged)
    assert_refused(response, "certificate_mismatch")
