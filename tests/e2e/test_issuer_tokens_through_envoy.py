"""Tokens from a real authorization server (oidc-provider, tests/support/authorization_server.py)
through the real Envoy and authz_service: DPoP-bound tokens (RFC 9449) with their proofs,
certificate-bound tokens (RFC 8705) over an Envoy listener asking for client certificates
(the gRPC transport: `include_peer_certificate`), and step-up (RFC 9470) from the issuer's
`acr` and `auth_time`. Two replicas share one Redis, so a proof is used once across both."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest

from tests.e2e.conftest import Stack, running_stack
from tests.e2e.credentials import (
    MFA,
    MISFIT_PROOF_IDS,
    MISFIT_PROOFS,
    PATH,
    asking_for_client_certificates,
    assert_allowed_as,
    assert_proof_used_once_across,
    assert_refused,
    assert_step_up_challenge,
    call,
    dpop_config,
    in_order,
    trusting_issuer,
)
from tests.support.authorization_server import AUDIENCE, AuthorizationServer
from tests.support.client_certs import ClientCertificate, ClientCertificateAuthority
from tests.support.dpop_proofs import DpopClient
from tests.support.redis import RedisServer

pytestmark = pytest.mark.envoy


class Replicas:
    def __init__(self, first: Stack, second: Stack, ca: ClientCertificateAuthority) -> None:
        self.first, self.second, self.ca = first, second, ca


@pytest.fixture(scope="module")
def replicas(
    tmp_path_factory: pytest.TempPathFactory,
    redis_server: RedisServer,
    authorization_server: AuthorizationServer,
    envoy_available: str,
) -> Iterator[Replicas]:
    """Two gateways (Envoy + authz_service each) sharing one Redis, trusting the issuer."""
    prefix = f"e2e-issuer{time.time_ns() % 1_000_000}:"
    ca = ClientCertificateAuthority(tmp_path_factory.mktemp("client-ca"))
    server = authorization_server
    config = in_order(
        dpop_config(redis_server.url, prefix),
        trusting_issuer(server.issuer, server.jwks_uri, AUDIENCE),
    )
    envoy = asking_for_client_certificates(ca.ca_file)
    with (
        running_stack(
            tmp_path_factory.mktemp("issuer-a"), edit_config=config, edit_envoy=envoy
        ) as first,
        running_stack(
            tmp_path_factory.mktemp("issuer-b"), edit_config=config, edit_envoy=envoy
        ) as second,
    ):
        yield Replicas(first, second, ca)


@pytest.fixture
def first(replicas: Replicas) -> Stack:
    return replicas.first


def url(stack: Stack, path: str = PATH) -> str:
    return stack.public_url + path


def test_an_issued_bearer_token_is_allowed_as_its_subject(
    first: Stack, authorization_server: AuthorizationServer
) -> None:
    response = call(first, authorization_server.token("service"), None, scheme="Bearer")
    assert_allowed_as(response, first, "service")


def test_an_issued_dpop_token_with_a_valid_proof_is_allowed(
    first: Stack, authorization_server: AuthorizationServer
) -> None:
    client = DpopClient()
    token = authorization_server.token("dpop-client", dpop=client)
    response = call(first, token, client.proof("GET", url(first), token))
    assert_allowed_as(response, first, "dpop-client")


def test_an_issued_dpop_token_without_a_proof_gets_a_dpop_challenge(
    first: Stack, authorization_server: AuthorizationServer
) -> None:
    token = authorization_server.token("dpop-client", dpop=DpopClient())
    response = call(first, token, None)
    assert_refused(response, "dpop_proof_missing")
    assert response.headers["www-authenticate"].startswith("DPoP ")


def test_a_proof_for_an_issued_token_replayed_on_another_replica_is_refused(
    replicas: Replicas, authorization_server: AuthorizationServer
) -> None:
    client = DpopClient()
    token = authorization_server.token("dpop-client", dpop=client)
    assert_proof_used_once_across(replicas.first, replicas.second, client, token)


@pytest.mark.parametrize("make_proof", MISFIT_PROOFS, ids=MISFIT_PROOF_IDS)
def test_a_proof_that_does_not_fit_an_issued_token_or_the_request_is_refused(
    first: Stack,
    authorization_server: AuthorizationServer,
    make_proof: Callable[[DpopClient, str, str], str],
) -> None:
    client = DpopClient()
    token = authorization_server.token("dpop-client", dpop=client)
    assert_refused(call(first, token, make_proof(client, url(first), token)), "invalid_dpop_proof")


def test_an_issued_dpop_token_presented_as_bearer_is_refused(
    first: Stack, authorization_server: AuthorizationServer
) -> None:
    client = DpopClient()
    token = authorization_server.token("dpop-client", dpop=client)
    response = call(first, token, client.proof("GET", url(first), token), scheme="Bearer")
    assert_refused(response, "invalid_token")


@pytest.fixture(scope="module")
def workload(replicas: Replicas) -> ClientCertificate:
    return replicas.ca.issue("orders-batch")


def test_a_certificate_bound_token_from_its_certificate_is_allowed(
    first: Stack, authorization_server: AuthorizationServer, workload: ClientCertificate
) -> None:
    token = authorization_server.token("mtls-client", certificate=workload.certificate)
    response = call(first, token, None, scheme="Bearer", certificate=workload)
    assert_allowed_as(response, first, "mtls-client")


def test_a_certificate_bound_token_from_another_certificate_is_refused(
    replicas: Replicas, authorization_server: AuthorizationServer, workload: ClientCertificate
) -> None:
    token = authorization_server.token("mtls-client", certificate=workload.certificate)
    other = replicas.ca.issue("another-workload")  # trusted by Envoy, but not the bound one
    response = call(replicas.first, token, None, scheme="Bearer", certificate=other)
    assert_refused(response, "certificate_mismatch")


def test_a_certificate_bound_token_without_a_client_certificate_is_refused(
    first: Stack, authorization_server: AuthorizationServer, workload: ClientCertificate
) -> None:
    token = authorization_server.token("mtls-client", certificate=workload.certificate)
    assert_refused(call(first, token, None, scheme="Bearer"), "certificate_mismatch")


def test_step_up_satisfied_by_an_issued_fresh_mfa_login_is_allowed(
    first: Stack, authorization_server: AuthorizationServer
) -> None:
    token = authorization_server.user_token("alice", acr=MFA, auth_time=time.time() - 5)
    response = call(first, token, None, scheme="Bearer", path="/downloads/report.pdf")
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    ("acr", "age"), [("urn:example:acr:password", 5), (MFA, 3600)], ids=["weak", "stale"]
)
def test_step_up_required_for_an_issued_login_asks_the_client_to_reauthenticate(
    first: Stack, authorization_server: AuthorizationServer, acr: str, age: float
) -> None:
    token = authorization_server.user_token("alice", acr=acr, auth_time=time.time() - age)
    response = call(first, token, None, scheme="Bearer", path="/downloads/report.pdf")
    assert_step_up_challenge(response)
