"""DPoP through the real Envoy in ext_authz `http_service` mode (the shipped example): the
proof header reaches the HTTP check endpoint (the example's allowed_headers), a valid proof
for an issued DPoP token passes, and a server-nonce challenge's `DPoP-Nonce` reaches the
client, whose proof with that nonce then passes."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.e2e.credentials import PATH, dpop_config, in_order, trusting_issuer
from tests.e2e.http_gateways import GatewayStack, running_gateway
from tests.e2e.test_envoy_http_service import start_envoy
from tests.support.authorization_server import AUDIENCE, AuthorizationServer
from tests.support.dpop_proofs import DpopClient
from tests.support.redis import RedisServer

pytestmark = pytest.mark.envoy


@pytest.fixture(scope="module")
def gateway(
    tmp_path_factory: pytest.TempPathFactory,
    redis_server: RedisServer,
    authorization_server: AuthorizationServer,
    envoy_available: str,
) -> Iterator[GatewayStack]:
    workdir = tmp_path_factory.mktemp("dpop-http-service")
    secret = workdir / "dpop-nonce.key"
    secret.write_text(secrets.token_urlsafe(32))

    def nonces_required(config: dict[str, Any]) -> None:
        dpop = config["jwt_providers"][0]["dpop"]
        dpop.update(nonce="required", nonce_lifetime_s=60, nonce_secret_file=str(secret))

    server = authorization_server
    edit = in_order(
        dpop_config(redis_server.url, f"e2e-dpop-http{time.time_ns() % 1_000_000}:"),
        trusting_issuer(server.issuer, server.jwks_uri, AUDIENCE),
        nonces_required,
    )
    endpoint = {"path": "/envoy", "integration": "envoy", "context": {"policy": "public"}}
    with running_gateway(workdir, endpoint, start_envoy, edit=edit) as stack:
        yield stack


def dpop_call(stack: GatewayStack, token: str, proof: str) -> httpx.Response:
    headers = {"authorization": f"DPoP {token}", "dpop": proof}
    return httpx.get(stack.url + PATH + "?page=1", headers=headers, timeout=10.0)


def test_a_nonce_challenge_reaches_the_client_and_a_proof_with_the_nonce_passes(
    gateway: GatewayStack, authorization_server: AuthorizationServer
) -> None:
    client = DpopClient()
    token = authorization_server.token("dpop-client", dpop=client)
    url = gateway.url + PATH

    asked = dpop_call(gateway, token, client.proof("GET", url, token))
    assert asked.status_code == 401, gateway.logs()
    assert asked.headers["x-authz-reason"] == "use_dpop_nonce"
    assert 'error="use_dpop_nonce"' in asked.headers["www-authenticate"]

    answered = dpop_call(
        gateway, token, client.proof("GET", url, token, nonce=asked.headers["dpop-nonce"])
    )
    assert answered.status_code == 200, gateway.logs()
    assert answered.json()["headers"]["x-user-id"] == "dpop-client"
