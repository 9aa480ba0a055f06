"""Zero-trust credentials through the real Envoy. DPoP (RFC 9449): a token bound to a client
key (`cnf.jkt`) passes only with a fresh proof by that key for this method and URL, sent with
the DPoP scheme; a proof's `jti` is used once across replicas sharing Redis. Step-up (RFC
9470): a route asking for MFA within 5 minutes answers a weaker or older login 401 with what
is needed; a DPoP-only route refuses a Bearer token."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.e2e.conftest import Stack
from tests.e2e.credentials import (
    MFA,
    MISFIT_PROOF_IDS,
    MISFIT_PROOFS,
    PATH,
    assert_proof_used_once_across,
    assert_refused,
    assert_step_up_challenge,
    call,
    dpop_replicas,
)
from tests.support.dpop_proofs import DpopClient
from tests.support.redis import RedisServer

pytestmark = pytest.mark.envoy


@pytest.fixture(scope="module")
def replicas(
    tmp_path_factory: pytest.TempPathFactory, redis_server: RedisServer, envoy_available: str
) -> Iterator[tuple[Stack, Stack]]:
    """Two gateways (Envoy + authz_service each) sharing one Redis and one IdP."""
    with dpop_replicas(tmp_path_factory, redis_server.url, "dpop") as pair:
        yield pair


def bound_token(stack: Stack, client: DpopClient, **claims: Any) -> str:
    return stack.idp.mint("alice", extra_claims={"cnf": {"jkt": client.jkt}, **claims})


@pytest.fixture
def first(replicas: tuple[Stack, Stack]) -> Stack:
    return replicas[0]


def url(stack: Stack) -> str:
    return stack.public_url + PATH


def test_a_bound_token_with_a_valid_proof_is_allowed(first: Stack) -> None:
    client = DpopClient()
    token = bound_token(first, client)
    response = call(first, token, client.proof("GET", url(first), token))
    assert response.status_code == 200, first.logs()


def test_a_bound_token_without_a_proof_gets_a_dpop_challenge(first: Stack) -> None:
    client = DpopClient()
    response = call(first, bound_token(first, client), None)
    assert_refused(response, "dpop_proof_missing")
    assert response.headers["www-authenticate"].startswith("DPoP ")
    assert 'algs="ES256"' in response.headers["www-authenticate"]


def test_a_proof_replayed_on_another_replica_is_refused(replicas: tuple[Stack, Stack]) -> None:
    first, second = replicas
    client = DpopClient()
    assert_proof_used_once_across(first, second, client, bound_token(first, client))


@pytest.mark.parametrize("make_proof", MISFIT_PROOFS, ids=MISFIT_PROOF_IDS)
def test_a_proof_that_does_not_fit_the_request_is_refused(
    first: Stack, make_proof: Callable[[DpopClient, str, str], str]
) -> None:
    client = DpopClient()
    token = bound_token(first, client)
    assert_refused(call(first, token, make_proof(client, url(first), token)), "invalid_dpop_proof")


def test_a_replayed_proof_is_refused(first: Stack) -> None:
    client = DpopClient()
    token = bound_token(first, client)
    proof = client.proof("GET", url(first), token)
    assert call(first, token, proof).status_code == 200
    assert_refused(call(first, token, proof), "dpop_proof_replayed")


def test_a_bound_token_presented_as_bearer_is_refused(first: Stack) -> None:
    client = DpopClient()
    token = bound_token(first, client)
    response = call(first, token, client.proof("GET", url(first), token), scheme="Bearer")
    assert_refused(response, "invalid_token")


def user_token(stack: Stack, acr: str, auth_age_s: float) -> str:
    claims = {"acr": acr, "auth_time": int(time.time() - auth_age_s)}
    return stack.idp.mint("alice", extra_claims=claims)


def test_step_up_satisfied_by_a_fresh_mfa_login_is_allowed(first: Stack) -> None:
    token = user_token(first, MFA, auth_age_s=5)
    response = call(first, token, None, scheme="Bearer", path="/downloads/report.pdf")
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    ("acr", "age"), [("urn:example:acr:password", 5), (MFA, 3600)], ids=["weak", "stale"]
)
def test_step_up_required_asks_the_client_to_reauthenticate(
    first: Stack, acr: str, age: float
) -> None:
    token = user_token(first, acr, auth_age_s=age)
    response = call(first, token, None, scheme="Bearer", path="/downloads/report.pdf")
    assert_step_up_challenge(response)


def test_a_dpop_only_route_refuses_a_bearer_token_and_takes_a_bound_one(first: Stack) -> None:
    bearer = first.idp.mint("root", roles=["admin"])
    assert_refused(call(first, bearer, None, scheme="Bearer", path="/admin/users"), "invalid_token")
    client = DpopClient()
    bound = first.idp.mint("root", roles=["admin"], extra_claims={"cnf": {"jkt": client.jkt}})
    proof = client.proof("GET", first.public_url + "/admin/users", bound)
    assert call(first, bound, proof, path="/admin/users").status_code == 200
