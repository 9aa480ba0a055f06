"""DPoP-bound tokens, replay refused across replicas, and step-up, through Envoy's ext_authz in
`http_service` mode: the credential tests of test_credentials_through_envoy.py (gRPC), run on
two gateways of the HTTP render (`dpop` and the challenge headers pass Envoy's header lists)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.conftest import Stack
from tests.e2e.credentials import dpop_replicas
from tests.e2e.test_credentials_through_envoy import (  # noqa: F401 (collected here too)
    first,
    test_a_bound_token_presented_as_bearer_is_refused,
    test_a_bound_token_with_a_valid_proof_is_allowed,
    test_a_bound_token_without_a_proof_gets_a_dpop_challenge,
    test_a_dpop_only_route_refuses_a_bearer_token_and_takes_a_bound_one,
    test_a_proof_replayed_on_another_replica_is_refused,
    test_a_proof_that_does_not_fit_the_request_is_refused,
    test_a_replayed_proof_is_refused,
    test_step_up_required_asks_the_client_to_reauthenticate,
    test_step_up_satisfied_by_a_fresh_mfa_login_is_allowed,
)
from tests.support.redis import RedisServer

pytestmark = pytest.mark.envoy


@pytest.fixture(scope="module")
def replicas(
    tmp_path_factory: pytest.TempPathFactory, redis_server: RedisServer, envoy_available: str
) -> Iterator[tuple[Stack, Stack]]:
    """Two HTTP-transport gateways (Envoy + authz_service each) sharing one Redis and one IdP."""
    with dpop_replicas(tmp_path_factory, redis_server.url, "dpop-http", "http") as pair:
        yield pair
