"""The test authorization server (oidc-provider on Node) issues what issue 17's checks verify:
signed JWTs under its JWKS, DPoP-bound (cnf.jkt) and certificate-bound (cnf.x5t#S256) tokens,
opaque tokens that introspection and revocation agree on, and step-up claims."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from authz_service.authn.cert_binding import thumbprint_of_der
from tests.support.authorization_server import (
    AUDIENCE,
    OPAQUE_AUDIENCE,
    AuthorizationServer,
    TokenRequestRefused,
    client_secret,
    running_authorization_server,
)
from tests.support.client_certs import self_signed_certificate
from tests.support.dpop_proofs import DpopClient


def verified_claims(server: AuthorizationServer, token: str) -> dict[str, Any]:
    key = jwt.PyJWKClient(server.jwks_uri).get_signing_key_from_jwt(token)
    claims: dict[str, Any] = jwt.decode(
        token, key, algorithms=["RS256"], audience=AUDIENCE, issuer=server.issuer
    )
    return claims


def test_a_client_credentials_token_is_a_jwt_signed_under_the_issuers_jwks(
    authorization_server: AuthorizationServer,
) -> None:
    claims = verified_claims(authorization_server, authorization_server.token("service"))
    assert claims["sub"] == "service"
    assert "cnf" not in claims


def test_a_dpop_token_is_bound_to_the_proof_key(
    authorization_server: AuthorizationServer,
) -> None:
    client = DpopClient()
    token = authorization_server.token("dpop-client", dpop=client)
    assert verified_claims(authorization_server, token)["cnf"] == {"jkt": client.jkt}


def test_a_dpop_client_without_a_proof_gets_no_token(
    authorization_server: AuthorizationServer,
) -> None:
    with pytest.raises(TokenRequestRefused, match="invalid_grant"):
        authorization_server.token("dpop-client")


def test_a_certificate_bound_token_carries_the_client_certificate_thumbprint(
    authorization_server: AuthorizationServer,
) -> None:
    certificate = self_signed_certificate("orders-batch")
    token = authorization_server.token("mtls-client", certificate=certificate)
    der = certificate.public_bytes(serialization.Encoding.DER)
    cnf = verified_claims(authorization_server, token)["cnf"]
    assert cnf == {"x5t#S256": thumbprint_of_der(der)}


def test_an_opaque_token_is_active_until_revoked(
    authorization_server: AuthorizationServer,
) -> None:
    token = authorization_server.token("service", resource=OPAQUE_AUDIENCE)
    assert token.count(".") == 0  # not a JWT
    answer = authorization_server.introspect(token)
    assert answer["active"] is True
    assert answer["aud"] == OPAQUE_AUDIENCE
    authorization_server.revoke(token)
    assert authorization_server.introspect(token) == {"active": False}


def test_a_user_token_says_how_and_when_the_user_signed_in(
    authorization_server: AuthorizationServer,
) -> None:
    signed_in = int(time.time()) - 600
    token = authorization_server.user_token("alice", acr="urn:example:acr:mfa", auth_time=signed_in)
    claims = verified_claims(authorization_server, token)
    assert (claims["sub"], claims["acr"], claims["auth_time"]) == (
        "alice",
        "urn:example:acr:mfa",
        signed_in,
    )


def test_an_issuer_requiring_dpop_nonces_binds_the_token_once_the_proof_has_its_nonce(
    tmp_path: Path,
) -> None:
    client = DpopClient()
    with running_authorization_server(tmp_path, dpop_nonce=True) as server:
        first = httpx.post(  # a proof without the nonce
            server.token_endpoint,
            data={"grant_type": "client_credentials", "resource": AUDIENCE},
            headers={"dpop": client.proof("POST", server.token_endpoint, None)},
            auth=("dpop-client", client_secret("dpop-client")),
        )
        assert (first.status_code, first.json()["error"]) == (400, "use_dpop_nonce")
        assert first.headers["dpop-nonce"]
        token = server.token("dpop-client", dpop=client)  # retries with the nonce
        assert verified_claims(server, token)["cnf"] == {"jkt": client.jkt}
