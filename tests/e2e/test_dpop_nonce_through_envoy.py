"""DPoP server nonces (RFC 9449 8) through the real Envoy, on both ext_authz transports (gRPC
Check, and `http_service` on the HTTP render, whose header lists pass `dpop` and
`x-forwarded-proto` to the check, `dpop-nonce` and `www-authenticate` to the client): a proof
without the server's nonce is answered 401 use_dpop_nonce, and Envoy hands the `DPoP-Nonce`
header to the client, which signs a new proof with it and gets through."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.conftest import Stack, running_stack
from tests.e2e.credentials import PATH, assert_refused, call, dpop_config, in_order, trusting_issuer
from tests.support.authorization_server import AUDIENCE, AuthorizationServer
from tests.support.dpop_proofs import DpopClient
from tests.support.redis import RedisServer
from tools.envoy_transports import TRANSPORTS

pytestmark = pytest.mark.envoy


@pytest.fixture(scope="module", params=TRANSPORTS)
def stack(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    redis_server: RedisServer,
    authorization_server: AuthorizationServer,
    envoy_available: str,
) -> Iterator[Stack]:
    workdir = tmp_path_factory.mktemp(f"dpop-nonce-{request.param}")
    secret = workdir / "dpop-nonce.key"
    secret.write_text(secrets.token_urlsafe(32))

    def nonces_required(config: dict[str, Any]) -> None:
        dpop = config["jwt_providers"][0]["dpop"]
        dpop.update(nonce="required", nonce_lifetime_s=60, nonce_secret_file=str(secret))

    server = authorization_server
    config = in_order(
        dpop_config(redis_server.url, f"e2e-nonce{time.time_ns() % 1_000_000}:"),
        trusting_issuer(server.issuer, server.jwks_uri, AUDIENCE),
        nonces_required,
    )
    with running_stack(workdir, edit_config=config, transport=request.param) as stack:
        yield stack


def test_a_proof_without_the_server_nonce_gets_one_and_a_proof_with_it_passes(
    stack: Stack, authorization_server: AuthorizationServer
) -> None:
    client = DpopClient()
    token = authorization_server.token("dpop-client", dpop=client)
    url = stack.public_url + PATH

    asked = call(stack, token, client.proof("GET", url, token))
    assert_refused(asked, "use_dpop_nonce")
    assert asked.headers["www-authenticate"].startswith("DPoP ")
    assert 'error="use_dpop_nonce"' in asked.headers["www-authenticate"]
    nonce = asked.headers["dpop-nonce"]

    answered = call(stack, token, client.proof("GET", url, token, nonce=nonce))
    assert answered.status_code == 200, stack.logs()
    assert answered.json()["headers"]["x-user-id"] == "dpop-client"


def test_a_proof_with_a_made_up_nonce_is_asked_for_the_real_one(
    stack: Stack, authorization_server: AuthorizationServer
) -> None:
    client = DpopClient()
    token = authorization_server.token("dpop-client", dpop=client)
    proof = client.proof("GET", stack.public_url + PATH, token, nonce="1.made-up")
    response = call(stack, token, proof)
    assert_refused(response, "use_dpop_nonce")
    assert response.headers["dpop-nonce"] != "1.made-up"
