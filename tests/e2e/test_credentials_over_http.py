"""DPoP-bound tokens, replay refused across replicas, and step-up, through Envoy's ext_authz in
`http_service` mode: the credential tests of test_credentials_through_envoy.py (gRPC), run on
two gateways of the HTTP render (`dpop` and the challenge headers pass Envoy's header lists)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from tests.e2e.conftest import Stack, running_stack
from tests.e2e.test_credentials_through_envoy import (  # noqa: F401 (collected here too)
    dpop_config,
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
    prefix = f"e2e-dpop-http{time.time_ns() % 1_000_000}:"
    with running_stack(
        tmp_path_factory.mktemp("dpop-http-a"),
        edit_config=dpop_config(redis_server.url, prefix),
        transport="http",
    ) as one:
        second_config = dpop_config(redis_server.url, prefix, one.idp.jwks_uri)
        with running_stack(
            tmp_path_factory.mktemp("dpop-http-b"), edit_config=second_config, transport="http"
        ) as two:
            yield one, two
