"""A rule's CEL `when:` decides through the real Envoy (config/local.yaml, rule `own-tenant`:
the token's `tenant` claim must name the path's second segment)."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import Stack
from tests.e2e.test_ext_authz_through_envoy import assert_denied, bearer, get

pytestmark = pytest.mark.envoy


def test_a_caller_reaches_its_own_tenants_data(stack: Stack) -> None:
    token = stack.idp.mint("dana", roles=["reader"], extra_claims={"tenant": "acme"})

    response = get(stack, "/tenants/acme/orders", bearer(token))

    assert response.status_code == 200, stack.logs()
    assert response.json()["headers"]["x-user-id"] == "dana"


def test_another_tenants_data_is_forbidden(stack: Stack) -> None:
    token = stack.idp.mint("dana", roles=["reader"], extra_claims={"tenant": "acme"})

    response = get(stack, "/tenants/globex/orders", bearer(token))

    assert_denied(response, 403, "no_matching_rule")


def test_a_token_without_the_claim_is_forbidden_not_an_error(stack: Stack) -> None:
    token = stack.idp.mint("erin", roles=["reader"])

    response = get(stack, "/tenants/acme/orders", bearer(token))

    assert_denied(response, 403, "no_matching_rule")
