"""Opaque tokens (RFC 7662 introspection) through the real Envoy and authz_service.

One gateway, three introspection providers, each reading its own token source:
- `Authorization: Bearer` (beside the JWT provider: a JWT is verified, anything else is
  introspected) -> the real authorization server (oidc-provider, tests/support), which issues,
  introspects and revokes (RFC 7009) the opaque tokens;
- `x-opaque-token` -> the test endpoint (tests/support/introspection_endpoint.py), which can be
  made to fail, hang or answer inactive, and counts its calls;
- `x-down-token` -> an endpoint where nothing listens.
Active answers are cached for at most 1 s (`cache.active_max_s`): the staleness window of a
revocation at the issuer. A revocation through our admin API counts at once.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from authz_service.cli.main import main
from tests.e2e.conftest import Stack, running_stack
from tests.support.authorization_server import (
    OPAQUE_AUDIENCE,
    RESOURCE_SERVER_CLIENT,
    AuthorizationServer,
    client_secret,
)
from tests.support.introspection_endpoint import (
    CLIENT_ID,
    CLIENT_SECRET,
    ISSUER,
    IntrospectionEndpoint,
    running_endpoint,
    wait_for,
)
from tools.processes import free_port, wait_for_port

pytestmark = pytest.mark.envoy

PATH = "/api/orders"
STALENESS_S = 1.0  # cache.active_max_s of the issuer's provider


@dataclass
class Gateway:
    stack: Stack
    issuer: AuthorizationServer
    endpoint: IntrospectionEndpoint
    admin_address: str

    def get(self, headers: dict[str, str]) -> httpx.Response:
        with self.stack.client() as client:
            return client.get(self.stack.public_url + PATH, headers=headers)

    def bearer(self, token: str) -> httpx.Response:
        return self.get({"authorization": f"Bearer {token}"})

    def opaque(self, token: str) -> httpx.Response:
        return self.get({"x-opaque-token": token})


def providers(workdir: Path, issuer: AuthorizationServer, endpoint_url: str) -> list[Any]:
    issuer_secret = workdir / "issuer-client-secret"
    issuer_secret.write_text(client_secret(RESOURCE_SERVER_CLIENT))
    test_secret = workdir / "test-client-secret"
    test_secret.write_text(CLIENT_SECRET)
    return [
        {
            "name": "issuer-opaque",
            "issuer": issuer.issuer,
            "introspection_endpoint": issuer.introspection_endpoint,
            "client_id": RESOURCE_SERVER_CLIENT,
            "client_secret_file": str(issuer_secret),
            "audiences": [OPAQUE_AUDIENCE],
            "timeout_s": 0.8,  # inside Envoy's 1 s ext_authz timeout
            "cache": {"active_max_s": STALENESS_S, "inactive_s": 1},
        },
        {
            "name": "test-endpoint",
            "issuer": ISSUER,
            "introspection_endpoint": endpoint_url,
            "client_id": CLIENT_ID,
            "client_secret_file": str(test_secret),
            "client_auth": "client_secret_post",
            "timeout_s": 0.3,
            "token_sources": [{"header": "x-opaque-token"}],
            "cache": {"active_max_s": 60, "inactive_s": 60},
        },
        {
            "name": "nobody-listening",
            "issuer": "https://down.test",
            "introspection_endpoint": f"http://127.0.0.1:{free_port()}/introspect",
            "client_id": CLIENT_ID,
            "client_secret_file": str(test_secret),
            "timeout_s": 0.3,
            "token_sources": [{"header": "x-down-token"}],
        },
    ]


@pytest.fixture(scope="module")
def gateway(
    tmp_path_factory: pytest.TempPathFactory,
    authorization_server: AuthorizationServer,
    envoy_available: str,
) -> Iterator[Gateway]:
    workdir = tmp_path_factory.mktemp("opaque")
    admin_port = free_port()
    with running_endpoint() as endpoint:

        def edit(config: dict[str, Any]) -> None:
            config["introspection_providers"] = providers(
                workdir, authorization_server, endpoint.url
            )
            config["admin"] = {"listen": f"127.0.0.1:{admin_port}"}

        with running_stack(workdir, edit_config=edit) as stack:
            wait_for_port(admin_port)
            yield Gateway(stack, authorization_server, endpoint, f"127.0.0.1:{admin_port}")


def opaque_token(gateway: Gateway, username: str = "alice") -> str:
    token = gateway.issuer.user_token(username, resource=OPAQUE_AUDIENCE)
    assert "." not in token  # not a JWT: introspected
    return token


def refused(response: httpx.Response, status: int, reason: str) -> None:
    assert (response.status_code, response.headers.get("x-authz-reason")) == (status, reason), (
        response.text
    )


def revoke_through_admin(gateway: Gateway, token: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPAQUE_TOKEN_TO_REVOKE", token)
    monkeypatch.delenv("AUTHZ_ADMIN_TOKEN", raising=False)
    code = main(
        [
            "admin",
            "--address",
            gateway.admin_address,
            "revoke",
            "--token-from-env",
            "OPAQUE_TOKEN_TO_REVOKE",
        ]
    )
    assert code == 0


# -- the real authorization server ---------------------------------------------------------


def test_an_issued_opaque_token_is_allowed_as_its_subject(gateway: Gateway) -> None:
    response = gateway.bearer(opaque_token(gateway))
    assert response.status_code == 200, gateway.stack.logs()
    upstream_saw = response.json()["headers"]
    assert upstream_saw["x-user-id"] == "alice"
    assert upstream_saw["x-auth-method"] == "introspection"


def test_a_jwt_beside_it_on_the_same_header_is_still_verified_locally(gateway: Gateway) -> None:
    assert gateway.bearer(gateway.stack.idp.mint("bob")).status_code == 200


def test_a_token_the_issuer_never_issued_is_inactive(gateway: Gateway) -> None:
    refused(gateway.bearer("never-issued-" + os.urandom(8).hex()), 401, "token_inactive")


def test_a_token_revoked_at_the_issuer_is_refused_once_the_cached_answer_expires(
    gateway: Gateway,
) -> None:
    token = opaque_token(gateway)
    assert gateway.bearer(token).status_code == 200  # cached as active, for STALENESS_S at most
    gateway.issuer.revoke(token)  # RFC 7009 at the issuer
    wait_for(lambda: gateway.bearer(token).status_code == 401, within_s=STALENESS_S + 4)
    refused(gateway.bearer(token), 401, "token_inactive")


def test_an_issued_token_revoked_through_our_admin_api_is_refused_at_once(
    gateway: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = opaque_token(gateway, "carol")
    assert gateway.bearer(token).status_code == 200
    revoke_through_admin(gateway, token, monkeypatch)
    refused(gateway.bearer(token), 401, "token_revoked")
    assert gateway.issuer.introspect(token)["active"] is True  # the issuer still says active


# -- the test endpoint: cached answers, outages --------------------------------------------


def test_an_active_token_is_introspected_once_then_answered_from_the_cache(
    gateway: Gateway,
) -> None:
    gateway.endpoint.issue("opaque-cached", sub="dave", scope="orders:read")
    for _ in range(3):
        assert gateway.opaque("opaque-cached").status_code == 200
    assert gateway.endpoint.calls_for("opaque-cached") == 1


def test_a_token_the_endpoint_says_is_inactive_is_refused(gateway: Gateway) -> None:
    gateway.endpoint.tokens["opaque-inactive"] = {"active": False}
    refused(gateway.opaque("opaque-inactive"), 401, "token_inactive")


def test_a_token_revoked_through_our_path_is_refused_although_its_answer_is_cached(
    gateway: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    gateway.endpoint.issue("opaque-revoked-here", sub="erin")
    assert gateway.opaque("opaque-revoked-here").status_code == 200
    revoke_through_admin(gateway, "opaque-revoked-here", monkeypatch)
    refused(gateway.opaque("opaque-revoked-here"), 401, "token_revoked")
    assert gateway.endpoint.calls_for("opaque-revoked-here") == 1


@pytest.mark.parametrize("mode", ["5xx", "garbage", "no_active"])
def test_an_endpoint_answering_garbage_is_a_503_never_an_allow(gateway: Gateway, mode: str) -> None:
    token = f"opaque-during-{mode}"
    gateway.endpoint.issue(token, sub="frank")
    gateway.endpoint.mode = mode
    try:
        refused(gateway.opaque(token), 503, "introspection_unavailable")
    finally:
        gateway.endpoint.mode = "ok"
    assert gateway.opaque(token).status_code == 200  # the failure was not cached


def test_a_slow_endpoint_is_a_503_within_the_timeout(gateway: Gateway) -> None:
    gateway.endpoint.issue("opaque-slow", sub="grace")
    gateway.endpoint.hold()
    try:
        refused(gateway.opaque("opaque-slow"), 503, "introspection_unavailable")
    finally:
        gateway.endpoint.release()
    assert "opaque-slow" not in gateway.stack.authz.log()  # the log line names no token


def test_an_endpoint_that_is_down_is_a_503(gateway: Gateway) -> None:
    refused(gateway.get({"x-down-token": "opaque-nowhere"}), 503, "introspection_unavailable")
    assert "introspection provider nobody-listening" in gateway.stack.authz.log()
