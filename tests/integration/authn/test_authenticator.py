"""Authenticator with real tokens verified against a JWKS served over loopback HTTP."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from authz_service.authn.authenticator import Authenticator
from authz_service.authn.jwks import JwksCache
from authz_service.authn.token_cache import TokenCache
from authz_service.decisions import AuthMethod, AuthnFailure, Identity, Reason, RequestAttributes
from authz_service.schema import Config
from tests.support.authz_config import api_key_hash, config_from, open_policy
from tests.support.idp import FakeClock
from tools.dev_idp import DevIdentityProvider, new_rsa_key

API_KEY = "batch-key-0123456789"


def make_config(idp: DevIdentityProvider, **provider: Any) -> Config:
    return config_from(
        {
            "jwt_providers": [
                {
                    "name": "dev",
                    "issuer": idp.issuer,
                    "audiences": [idp.audience],
                    "jwks_uri": idp.jwks_uri,
                    "algorithms": ["RS256"],
                    "leeway_s": 5,
                    "max_lifetime_s": 3600,
                    "roles_claims": ["realm_access.roles"],
                    "tier_claim": "tier",
                    "claims_to_headers": {"email": "x-user-email"},
                    "token_sources": [
                        {"header": "authorization", "prefix": "Bearer "},
                        {"cookie": "access_token"},
                    ],
                    "jwks": {"min_refetch_interval_s": 10, "fetch_timeout_s": 1},
                    **provider,
                }
            ],
            "api_keys": {
                "keys": [
                    {
                        "name": "batch",
                        "hash": api_key_hash(API_KEY),
                        "principal": "svc:batch",
                        "roles": ["internal"],
                        "tier": "gold",
                    }
                ]
            },
            "mtls": {
                "authenticate_peers": True,
                "trusted_principals": ["spiffe://prod.example/*"],
                "roles": {"spiffe://prod.example/ns/billing/*": ["billing"]},
            },
            "policies": open_policy(),
        }
    )


class Harness:
    def __init__(self, idp: DevIdentityProvider, **provider: Any) -> None:
        self.idp = idp
        self.clock = FakeClock()
        config = make_config(idp, **provider)
        settings = config.jwt_providers[0].jwks
        self.jwks = JwksCache(idp.jwks_uri, settings, clock=self.clock)
        self.cache = TokenCache(100)
        self.authenticator = Authenticator(config, {idp.issuer: self.jwks}, token_cache=self.cache)

    async def authenticate(
        self, headers: dict[str, str] | None = None, peer: str = ""
    ) -> Identity | AuthnFailure | None:
        request = RequestAttributes(
            method="GET", host="api", path="/", headers=headers or {}, peer_principal=peer
        )
        return await self.authenticator.authenticate(request)

    async def bearer(self, token: str) -> Identity | AuthnFailure | None:
        return await self.authenticate({"authorization": f"Bearer {token}"})


@pytest.fixture
async def harness(idp: DevIdentityProvider) -> AsyncIterator[Harness]:
    built = Harness(idp)
    yield built
    await built.jwks.close()


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def unverified_segments(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    header, payload, _ = token.split(".")
    pad = lambda s: s + "=" * (-len(s) % 4)  # noqa: E731
    return (
        json.loads(base64.urlsafe_b64decode(pad(header))),
        json.loads(base64.urlsafe_b64decode(pad(payload))),
    )


def rejected(result: Identity | AuthnFailure | None) -> Reason:
    assert isinstance(result, AuthnFailure), result
    return result.reason


async def test_valid_token_becomes_an_identity_with_realm_roles(
    harness: Harness, idp: DevIdentityProvider
) -> None:
    token = idp.mint(
        "alice",
        roles=["admin", "reader"],
        scope="openid reports:read",
        extra_claims={"tier": "gold", "email": "alice@example.com"},
    )
    identity = await harness.bearer(token)
    assert isinstance(identity, Identity)
    assert identity.principal == "alice"
    assert identity.method is AuthMethod.JWT
    assert identity.issuer == idp.issuer
    assert identity.roles == frozenset({"admin", "reader"})
    assert identity.scopes == frozenset({"openid", "reports:read"})
    assert identity.tier == "gold"
    assert identity.claims == {"x-user-email": "alice@example.com"}
    assert identity.expires_at == unverified_segments(token)[1]["exp"]


async def test_token_is_read_from_the_configured_cookie(
    harness: Harness, idp: DevIdentityProvider
) -> None:
    token = idp.mint("carol")
    identity = await harness.authenticate({"cookie": f"theme=dark; access_token={token}"})
    assert isinstance(identity, Identity)
    assert identity.principal == "carol"


async def test_expired_token_is_rejected(harness: Harness, idp: DevIdentityProvider) -> None:
    token = idp.mint(now=time.time() - 3600, lifetime_s=300)
    assert rejected(await harness.bearer(token)) is Reason.TOKEN_EXPIRED


async def test_token_not_yet_valid_is_rejected(harness: Harness, idp: DevIdentityProvider) -> None:
    token = idp.mint(extra_claims={"nbf": int(time.time()) + 600})
    assert rejected(await harness.bearer(token)) is Reason.TOKEN_NOT_YET_VALID


async def test_token_from_an_unknown_issuer_is_rejected(harness: Harness) -> None:
    stranger = DevIdentityProvider(issuer="https://other-idp.example")
    assert rejected(await harness.bearer(stranger.mint())) is Reason.UNKNOWN_ISSUER
    assert harness.idp.requests == 0  # nothing to fetch for an issuer we do not trust


async def test_token_for_another_audience_is_rejected(
    harness: Harness, idp: DevIdentityProvider
) -> None:
    token = idp.mint(extra_claims={"aud": "another-api"})
    assert rejected(await harness.bearer(token)) is Reason.WRONG_AUDIENCE


async def test_token_without_an_audience_is_rejected(
    harness: Harness, idp: DevIdentityProvider
) -> None:
    token = jwt.encode(
        {"iss": idp.issuer, "sub": "alice", "exp": int(time.time()) + 60},
        idp.signing_key.private_key,
        algorithm="RS256",
        headers={"kid": idp.signing_key.kid},
    )
    assert rejected(await harness.bearer(token)) is Reason.MISSING_CLAIM


async def test_tampered_payload_fails_the_signature_check(
    harness: Harness, idp: DevIdentityProvider
) -> None:
    header, _, signature = idp.mint("alice", roles=["reader"]).split(".")
    claims = unverified_segments(idp.mint("alice"))[1]
    claims["realm_access"] = {"roles": ["admin"]}
    forged = f"{header}.{b64(json.dumps(claims).encode())}.{signature}"
    assert rejected(await harness.bearer(forged)) is Reason.BAD_SIGNATURE


async def test_alg_none_is_rejected(harness: Harness, idp: DevIdentityProvider) -> None:
    _, claims = unverified_segments(idp.mint("alice", roles=["admin"]))
    head = b64(json.dumps({"alg": "none", "typ": "JWT", "kid": idp.signing_key.kid}).encode())
    body = b64(json.dumps(claims).encode())
    assert rejected(await harness.bearer(f"{head}.{body}.")) is Reason.UNSUPPORTED_ALGORITHM
    # Some libraries accept "none" with any signature: so must not we.
    assert rejected(await harness.bearer(f"{head}.{body}.AAAA")) is Reason.UNSUPPORTED_ALGORITHM


async def test_hs256_signed_with_the_rsa_public_key_is_rejected(
    harness: Harness, idp: DevIdentityProvider
) -> None:
    public_pem = idp.signing_key.private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    _, claims = unverified_segments(idp.mint("alice", roles=["admin"]))
    signing_input = (
        b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": idp.signing_key.kid}).encode())
        + "."
        + b64(json.dumps(claims).encode())
    )
    mac = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
    token = f"{signing_input}.{b64(mac)}"
    assert rejected(await harness.bearer(token)) is Reason.UNSUPPORTED_ALGORITHM


async def test_token_signed_with_an_unpublished_key_is_rejected(
    harness: Harness, idp: DevIdentityProvider
) -> None:
    token = idp.mint(key=new_rsa_key("not-published"))
    assert rejected(await harness.bearer(token)) is Reason.UNKNOWN_KEY


async def test_unpublished_key_reusing_a_published_kid_fails_the_signature(
    harness: Harness, idp: DevIdentityProvider
) -> None:
    token = idp.mint(key=new_rsa_key(idp.signing_key.kid))
    assert rejected(await harness.bearer(token)) is Reason.BAD_SIGNATURE


async def test_jku_header_is_rejected_before_any_fetch(
    harness: Harness, idp: DevIdentityProvider
) -> None:
    token = idp.mint(headers={"jku": "http://127.0.0.1:9/evil-jwks.json"})
    assert rejected(await harness.bearer(token)) is Reason.FORBIDDEN_TOKEN_HEADER
    assert idp.requests == 0


async def test_token_lifetime_beyond_the_maximum_is_rejected(
    harness: Harness, idp: DevIdentityProvider
) -> None:
    token = idp.mint(lifetime_s=2 * 3600)
    assert rejected(await harness.bearer(token)) is Reason.TOKEN_LIFETIME_TOO_LONG


async def test_token_larger_than_the_provider_limit_is_an_invalid_request(
    idp: DevIdentityProvider,
) -> None:
    harness = Harness(idp, max_token_bytes=1000)
    result = await harness.bearer(idp.mint(extra_claims={"pad": "x" * 1000}))
    assert isinstance(result, AuthnFailure)
    assert (result.reason, result.bearer_error) == (Reason.TOKEN_TOO_LARGE, "invalid_request")
    await harness.jwks.close()


async def test_token_signed_with_a_rotated_key_verifies_after_the_refetch(
    harness: Harness, idp: DevIdentityProvider
) -> None:
    assert isinstance(await harness.bearer(idp.mint("alice")), Identity)
    new_key = idp.rotate()
    harness.clock.advance(11)
    identity = await harness.bearer(idp.mint("alice", key=new_key))
    assert isinstance(identity, Identity)
    assert idp.requests == 2


async def test_repeated_token_is_served_from_the_cache_without_verification(
    harness: Harness, idp: DevIdentityProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    decodes = 0
    real_decode = jwt.decode

    def counting_decode(*args: Any, **kwargs: Any) -> Any:
        nonlocal decodes
        decodes += 1
        return real_decode(*args, **kwargs)

    monkeypatch.setattr(jwt, "decode", counting_decode)
    token = idp.mint("alice")
    first = await harness.bearer(token)
    second = await harness.bearer(token)
    assert isinstance(first, Identity)
    assert second == first
    assert decodes == 1
    assert harness.cache.hits == 1


async def test_failed_token_is_not_cached(harness: Harness, idp: DevIdentityProvider) -> None:
    token = idp.mint(extra_claims={"aud": "another-api"})
    await harness.bearer(token)
    assert rejected(await harness.bearer(token)) is Reason.WRONG_AUDIENCE
    assert len(harness.cache) == 0


async def test_api_key_matching_a_stored_hash_becomes_an_identity(harness: Harness) -> None:
    identity = await harness.authenticate({"x-api-key": API_KEY})
    assert identity == Identity(
        principal="svc:batch",
        method=AuthMethod.API_KEY,
        roles=frozenset({"internal"}),
        tier="gold",
    )


async def test_wrong_api_key_is_rejected(harness: Harness) -> None:
    assert rejected(await harness.authenticate({"x-api-key": API_KEY + "x"})) is (
        Reason.INVALID_API_KEY
    )


async def test_invalid_token_does_not_fall_back_to_a_valid_api_key(harness: Harness) -> None:
    result = await harness.authenticate(
        {"authorization": "Bearer not.a.token", "x-api-key": API_KEY}
    )
    assert rejected(result) is Reason.MALFORMED_TOKEN


async def test_trusted_mtls_peer_becomes_an_identity_with_its_roles(harness: Harness) -> None:
    identity = await harness.authenticate(peer="spiffe://prod.example/ns/billing/sa/batch")
    assert isinstance(identity, Identity)
    assert identity.method is AuthMethod.MTLS
    assert identity.principal == "spiffe://prod.example/ns/billing/sa/batch"
    assert identity.roles == frozenset({"billing"})


async def test_untrusted_mtls_peer_stays_anonymous(harness: Harness) -> None:
    assert await harness.authenticate(peer="spiffe://staging.example/ns/billing/sa/x") is None
    assert await harness.authenticate() is None


async def test_a_cached_token_is_still_refused_from_a_source_its_provider_does_not_use(
    idp: DevIdentityProvider,
) -> None:
    # Provider "dev" reads only the Authorization header; provider "web" only a cookie.
    config = make_config(idp, token_sources=[{"header": "authorization", "prefix": "Bearer "}])
    dev = config.jwt_providers[0].model_dump()
    web = {
        **dev,
        "name": "web",
        "issuer": "https://web.example",
        "token_sources": [{"cookie": "session"}],
    }
    config = Config.model_validate({**config.model_dump(), "jwt_providers": [dev, web]})
    jwks = JwksCache(idp.jwks_uri, config.jwt_providers[0].jwks)
    authenticator = Authenticator(
        config, {idp.issuer: jwks, "https://web.example": jwks}, token_cache=TokenCache(100)
    )
    token = idp.mint("alice")

    def request(headers: dict[str, str]) -> RequestAttributes:
        return RequestAttributes(method="GET", host="api", path="/", headers=headers)

    try:
        from_header = await authenticator.authenticate(
            request({"authorization": f"Bearer {token}"})
        )
        from_cookie = await authenticator.authenticate(request({"cookie": f"session={token}"}))
    finally:
        await jwks.close()

    assert isinstance(from_header, Identity)  # verified, and now cached
    assert rejected(from_cookie) is Reason.UNKNOWN_ISSUER
