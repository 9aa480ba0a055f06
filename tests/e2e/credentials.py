"""Helpers of the zero-trust credential tests through Envoy (DPoP, certificate binding,
step-up): the service config edits, a call as a client makes it, and the refusal it expects."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import Stack, running_stack
from tests.support.client_certs import ClientCertificate
from tests.support.dpop_proofs import DpopClient

PATH = "/api/orders"
MFA = "urn:example:acr:mfa"

ConfigEdit = Callable[[dict[str, Any]], None]
# Proofs that do not fit their token or the request: (client, url, token) -> proof.
MISFIT_PROOFS: list[Callable[[DpopClient, str, str], str]] = [
    lambda c, u, t: c.proof("POST", u, t),
    lambda c, u, t: c.proof("GET", u.replace(PATH, "/api/other"), t),
    lambda c, u, t: DpopClient().proof("GET", u, t),
    lambda c, u, t: c.proof("GET", u, "another-token"),
    lambda c, u, t: c.proof("GET", u, t, iat=time.time() - 300),
]
MISFIT_PROOF_IDS = ["other-method", "other-url", "other-key", "ath-of-another-token", "stale-iat"]


def dpop_config(redis_url: str, prefix: str, jwks_uri: str | None = None) -> ConfigEdit:
    def edit(config: dict[str, Any]) -> None:
        provider = config["jwt_providers"][0]
        provider["token_sources"].append({"header": "authorization", "prefix": "DPoP "})
        provider["dpop"] = {"algorithms": ["ES256"], "max_age_s": 30}
        for rule in config["policies"]["public"]["rules"]:
            if rule["name"] == "downloads":  # step-up: MFA within the last 5 minutes
                rule["step_up"] = {"acr_values": [MFA], "max_age_s": 300}
            if rule["name"] == "admin-area":
                rule["require_dpop"] = True
        if jwks_uri is not None:  # a second replica trusting the first replica's IdP
            provider["jwks_uri"] = jwks_uri
        # Roomy timeouts: a loaded 2-core CI machine must not turn a proof check into a 503.
        redis = {"url": redis_url, "key_prefix": prefix, "timeout_ms": 1000}
        config["rate_limit"].update(store="redis", redis={**redis, "connect_timeout_ms": 2000})

    return edit


@contextlib.contextmanager
def dpop_replicas(
    tmp_path_factory: pytest.TempPathFactory, redis_url: str, name: str, transport: str = "grpc"
) -> Iterator[tuple[Stack, Stack]]:
    """Two gateways (Envoy + authz_service each) of `dpop_config`, sharing one Redis key prefix
    (so a proof's `jti` is used once across both) and the first one's IdP."""
    prefix = f"e2e-{name}{time.time_ns() % 1_000_000}:"
    with running_stack(
        tmp_path_factory.mktemp(f"{name}-a"),
        edit_config=dpop_config(redis_url, prefix),
        transport=transport,
    ) as first:
        second_config = dpop_config(redis_url, prefix, first.idp.jwks_uri)
        with running_stack(
            tmp_path_factory.mktemp(f"{name}-b"), edit_config=second_config, transport=transport
        ) as second:
            yield first, second


def trusting_issuer(issuer: str, jwks_uri: str, audience: str) -> ConfigEdit:
    """The service's JWT provider verifies tokens of this issuer (RS256, its JWKS)."""

    def edit(config: dict[str, Any]) -> None:
        provider = config["jwt_providers"][0]
        provider.update(issuer=issuer, audiences=[audience], jwks_uri=jwks_uri)
        provider["algorithms"] = ["RS256"]

    return edit


def asking_for_client_certificates(ca_file: Path) -> ConfigEdit:
    """An edit of the rendered Envoy config: the public listener asks for a client certificate
    (optional: browsers without one still connect) and verifies it against `ca_file`. Over gRPC
    ext_authz includes it in Check; over HTTP the render has Envoy set x-forwarded-client-cert
    from it (SANITIZE_SET: a client's own copy is dropped)."""

    def edit(envoy: dict[str, Any]) -> None:
        public = next(
            one for one in envoy["static_resources"]["listeners"] if one["name"] == "public"
        )
        tls = public["filter_chains"][0]["transport_socket"]["typed_config"]
        tls["require_client_certificate"] = False
        tls["common_tls_context"]["validation_context"] = {"trusted_ca": {"filename": str(ca_file)}}

    return edit


def in_order(*edits: ConfigEdit) -> ConfigEdit:
    def edit(config: dict[str, Any]) -> None:
        for one in edits:
            one(config)

    return edit


def call(
    stack: Stack,
    token: str,
    proof: str | None,
    *,
    scheme: str = "DPoP",
    method: str = "GET",
    host: str | None = None,
    path: str = PATH,
    certificate: ClientCertificate | None = None,
    extra_headers: Mapping[str, str] | None = None,
) -> httpx.Response:
    """A request to the public listener as the client sends it (with `?page=1`: the proof's
    `htu` leaves the query out); `certificate` is presented in the TLS handshake,
    `extra_headers` are whatever else the client writes."""
    headers = {**(extra_headers or {}), "authorization": f"{scheme} {token}"}
    if host is not None:
        headers["host"] = host
    if proof is not None:
        headers["dpop"] = proof
    client = (
        stack.client()
        if certificate is None
        else httpx.Client(timeout=10.0, verify=certificate.ssl_context(stack.ca_file))
    )
    with client as http:
        return http.request(method, stack.public_url + path + "?page=1", headers=headers)


def assert_refused(response: httpx.Response, reason: str) -> None:
    assert response.status_code == 401, response.text
    assert response.headers["x-authz-reason"] == reason


def assert_allowed_as(response: httpx.Response, stack: Stack, subject: str) -> None:
    """Allowed, and the upstream (the demo echo) was told who the caller is."""
    assert response.status_code == 200, stack.logs()
    assert response.json()["headers"]["x-user-id"] == subject


def assert_proof_used_once_across(
    first: Stack, second: Stack, client: DpopClient, token: str
) -> None:
    """A proof taken by the first replica is refused as a replay by the second."""
    # Replicas behind one public name: both are called as the second one's host, which the
    # proof's htu names; the first replica takes the proof, the second sees its jti in Redis.
    proof = client.proof("GET", second.public_url + PATH, token)
    public_host = second.public_url.removeprefix("https://")
    taken = call(first, token, proof, host=public_host)
    assert taken.status_code == 200, (taken.headers, taken.text)
    assert_refused(call(second, token, proof), "dpop_proof_replayed")


def assert_step_up_challenge(response: httpx.Response) -> None:
    """Refused for a weak or old login, the challenge naming MFA within 300 s (RFC 9470)."""
    assert_refused(response, "insufficient_user_authentication")
    challenge = response.headers["www-authenticate"]
    assert 'error="insufficient_user_authentication"' in challenge
    assert f'acr_values="{MFA}"' in challenge
    assert 'max_age="300"' in challenge
