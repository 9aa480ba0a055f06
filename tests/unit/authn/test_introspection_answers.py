"""What an RFC 7662 introspection answer says of the caller (pure), the answer cache, and
revocation of an opaque token by its digest."""

from __future__ import annotations

from typing import Any

import pytest

from authz_service.authn.introspection import identity_from_answer
from authz_service.authn.introspection_cache import IntrospectionResultCache, token_digest
from authz_service.authn.revocation import RevocationList
from authz_service.decisions import AuthMethod, AuthnFailure, Identity, Reason
from authz_service.schema import IntrospectionCache, IntrospectionProvider
from tests.support.idp import FakeClock

NOW = 1_000_000.0
ISSUER = "https://issuer.test"


def provider(**settings: Any) -> IntrospectionProvider:
    base: dict[str, Any] = {
        "name": "opaque",
        "issuer": ISSUER,
        "introspection_endpoint": "https://issuer.test/introspect",
        "client_id": "gw",
        "client_secret_env": "UNUSED",
    }
    return IntrospectionProvider.model_validate({**base, **settings})


def answer(**claims: Any) -> dict[str, Any]:
    return {"active": True, "sub": "alice", "exp": NOW + 300, "iss": ISSUER, **claims}


def refused(result: Identity | AuthnFailure) -> Reason:
    assert isinstance(result, AuthnFailure), result
    return result.reason


def test_an_active_answer_maps_claims_like_a_jwt() -> None:
    settings = provider(
        roles_claims=["realm_access.roles"],
        tier_claim="tier",
        claims_to_headers={"email": "X-Email"},
    )
    result = identity_from_answer(
        settings,
        answer(
            scope="orders:read orders:write",
            realm_access={"roles": ["admin"]},
            tier="gold",
            email="a@example.com",
            jti="j-1",
            iat=NOW - 10,
        ),
        "sha256:ab",
        NOW,
    )
    assert isinstance(result, Identity)
    assert result.method is AuthMethod.INTROSPECTION
    assert (result.principal, result.issuer, result.tier) == ("alice", ISSUER, "gold")
    assert result.scopes == {"orders:read", "orders:write"}
    assert result.roles == {"admin"}
    assert result.claims == {"x-email": "a@example.com"}
    assert (result.token_id, result.token_digest) == ("j-1", "sha256:ab")
    assert (result.expires_at, result.issued_at) == (NOW + 300, NOW - 10)


@pytest.mark.parametrize(
    ("claims", "reason"),
    [
        ({"active": False}, Reason.TOKEN_INACTIVE),
        ({"exp": NOW - 1}, Reason.TOKEN_EXPIRED),
        ({"exp": "soon"}, Reason.MALFORMED_TOKEN),
        ({"nbf": NOW + 60}, Reason.TOKEN_NOT_YET_VALID),
        ({"iss": "https://elsewhere.test"}, Reason.WRONG_ISSUER),
        ({"sub": None}, Reason.MISSING_CLAIM),
        ({"cnf": {"jkt": "thumbprint"}}, Reason.INVALID_TOKEN),
    ],
)
def test_answers_that_do_not_vouch_for_the_caller_are_refused(
    claims: dict[str, Any], reason: Reason
) -> None:
    assert refused(identity_from_answer(provider(), answer(**claims), "sha256:ab", NOW)) is reason


def test_the_audience_is_checked_where_the_answer_names_one() -> None:
    settings = provider(audiences=["orders"])
    assert isinstance(identity_from_answer(settings, answer(), "d", NOW), Identity)
    ok = identity_from_answer(settings, answer(aud=["billing", "orders"]), "d", NOW)
    assert isinstance(ok, Identity)
    assert refused(identity_from_answer(settings, answer(aud="billing"), "d", NOW)) is (
        Reason.WRONG_AUDIENCE
    )


def test_a_certificate_bound_opaque_token_carries_its_thumbprint() -> None:
    result = identity_from_answer(provider(), answer(cnf={"x5t#S256": "abc"}), "d", NOW)
    assert isinstance(result, Identity)
    assert result.bound_x5t == "abc"


def test_a_token_digest_is_a_sha256_that_does_not_contain_the_token() -> None:
    digest = token_digest("opaque-token-value")
    assert digest.startswith("sha256:") and len(digest) == 7 + 64
    assert "opaque" not in digest


def identity(expires_at: float | None) -> Identity:
    return Identity("alice", AuthMethod.INTROSPECTION, expires_at=expires_at)


def test_an_active_answer_is_cached_until_exp_capped_by_the_max_age() -> None:
    clock = FakeClock(NOW)
    cache = IntrospectionResultCache(IntrospectionCache(active_max_s=30), clock)
    cache.put("short", identity(NOW + 10))
    cache.put("long", identity(NOW + 600))
    clock.advance(9.9)
    assert cache.get("short") is not None
    clock.advance(0.1)
    assert cache.get("short") is None  # its exp
    clock.advance(19.9)
    assert cache.get("long") is not None
    clock.advance(0.1)
    assert cache.get("long") is None  # the cap: a revocation at the issuer shows by now


def test_an_inactive_answer_is_cached_briefly() -> None:
    clock = FakeClock(NOW)
    cache = IntrospectionResultCache(IntrospectionCache(inactive_s=5), clock)
    cache.put("d", AuthnFailure(Reason.TOKEN_INACTIVE, "token is not active"))
    clock.advance(4.9)
    assert cache.get("d") is not None
    clock.advance(0.1)
    assert cache.get("d") is None


def test_the_cache_is_bounded_and_can_be_turned_off() -> None:
    cache = IntrospectionResultCache(IntrospectionCache(max_entries=2), FakeClock(NOW))
    for key in ("a", "b", "c"):
        cache.put(key, identity(None))
    assert len(cache) == 2 and cache.get("a") is None
    off = IntrospectionResultCache(IntrospectionCache(active_max_s=0), FakeClock(NOW))
    off.put("a", identity(None))
    assert off.get("a") is None


def test_an_opaque_token_is_revoked_by_its_digest_or_its_jti() -> None:
    revocations = RevocationList(FakeClock(NOW))
    revocations.add_jti("sha256:ab", NOW + 60)
    revocations.add_jti("j-2", NOW + 60)
    by_digest = Identity(
        "alice", AuthMethod.INTROSPECTION, token_id="j-1", token_digest="sha256:ab"
    )
    by_jti = Identity("alice", AuthMethod.INTROSPECTION, token_id="j-2", token_digest="sha256:cd")
    other = Identity("alice", AuthMethod.INTROSPECTION, token_id="j-3", token_digest="sha256:ef")
    assert revocations.is_revoked(by_digest)
    assert revocations.is_revoked(by_jti)
    assert not revocations.is_revoked(other)


def test_a_provider_needs_exactly_one_secret_source() -> None:
    with pytest.raises(ValueError, match="exactly one of client_secret_file"):
        provider(client_secret_env=None)
    with pytest.raises(ValueError, match="http"):
        provider(introspection_endpoint="ftp://issuer.test/introspect")
