from __future__ import annotations

import json
from typing import Any

import pytest

from authz_service.decisions import (
    AuthMethod,
    Decision,
    Identity,
    Outcome,
    Reason,
    RequestAttributes,
)
from authz_service.services.response_policy import REASON_HEADER, ResponsePolicy
from tests.support.authz_config import config_from, open_policy

ALICE = Identity(
    principal="alice",
    method=AuthMethod.JWT,
    issuer="https://idp.example",
    roles=frozenset({"reader", "admin"}),
    scopes=frozenset({"b", "a"}),
    tier="gold",
    claims={"x-user-email": "alice@example.com"},
)


OVERRIDES = {"x-http-method-override", "x-http-method", "x-method-override"}


def responses(
    identity_headers: dict[str, Any] | None = None,
    credential_headers: frozenset[str] = frozenset({"authorization", "x-api-key"}),
    method_overrides: dict[str, Any] | None = None,
) -> ResponsePolicy:
    document: dict[str, Any] = {
        "realm": 'api "prod"',
        "policies": open_policy(),
        "jwt_providers": [
            {
                "name": "idp",
                "issuer": "https://idp.example",
                "audiences": ["api"],
                "jwks_uri": "https://idp.example/jwks.json",
                "claims_to_headers": {"email": "X-User-Email", "org.team": "x-user-team"},
                "token_sources": [
                    {"header": "authorization", "prefix": "Bearer "},
                    {"cookie": "access_token"},
                    {"cookie": "session"},
                ],
            }
        ],
    }
    if method_overrides is not None:
        document["method_overrides"] = method_overrides
    if identity_headers is not None:
        document["identity_headers"] = identity_headers
    return ResponsePolicy(config_from(document), credential_headers)


def allowed(identity: Identity | None) -> Decision:
    return Decision(Outcome.ALLOW, Reason.ALLOWED, rule="api", policy="public", identity=identity)


def test_allow_sets_identity_headers_for_the_upstream() -> None:
    response = responses().allow(allowed(ALICE))
    assert response.headers_to_set == {
        "x-user-email": "alice@example.com",
        "x-user-id": "alice",
        "x-user-roles": "admin,reader",
        "x-user-tier": "gold",
        "x-auth-method": "jwt",
    }


def test_allow_removes_every_identity_header_it_does_not_set() -> None:
    policy = responses({"always_remove": ["X-Internal-Admin"]})
    response = policy.allow(allowed(ALICE))
    assert set(response.headers_to_remove) == {"x-internal-admin", "x-user-team", *OVERRIDES}
    anonymous = policy.allow(allowed(None))
    assert anonymous.headers_to_set == {}
    assert set(anonymous.headers_to_remove) == {
        "x-user-id",
        "x-user-roles",
        "x-user-tier",
        "x-auth-method",
        "x-user-email",
        "x-user-team",
        "x-internal-admin",
        *OVERRIDES,
    }


def test_allow_removes_an_identity_header_whose_value_is_empty() -> None:
    no_tier = Identity(principal="bob", method=AuthMethod.API_KEY)
    response = responses().allow(allowed(no_tier))
    assert "x-user-tier" not in response.headers_to_set
    assert "x-user-tier" in response.headers_to_remove
    assert "x-user-roles" in response.headers_to_remove


def test_credentials_are_stripped_only_when_configured() -> None:
    kept = responses().allow(allowed(ALICE))
    assert "authorization" not in kept.headers_to_remove
    stripped = responses({"strip_credentials": True}).allow(allowed(ALICE))
    assert {"authorization", "x-api-key"} <= set(stripped.headers_to_remove)


def with_cookie(cookie: str) -> RequestAttributes:
    return RequestAttributes("GET", "api.example", "/", headers={"cookie": cookie})


def test_strip_credentials_cuts_the_token_cookies_out_of_the_cookie_header() -> None:
    policy = responses({"strip_credentials": True})
    request = with_cookie("theme=dark; access_token=T0K3N; lang=en; session=S3SS")

    response = policy.allow(allowed(ALICE), request)

    assert policy.rewrites_cookies(request)
    assert response.headers_to_set["cookie"] == "theme=dark; lang=en"
    assert "cookie" not in response.headers_to_remove
    assert response.upstream_cookie == "theme=dark; lang=en"


def test_a_cookie_header_with_only_token_cookies_is_removed() -> None:
    response = responses({"strip_credentials": True}).allow(
        allowed(ALICE), with_cookie("access_token=T0K3N")
    )

    assert "cookie" not in response.headers_to_set
    assert "cookie" in response.headers_to_remove
    assert response.upstream_cookie == ""


def test_cookies_without_a_token_cookie_are_left_alone() -> None:
    policy = responses({"strip_credentials": True})
    request = with_cookie("theme=dark; my_access_token=x")

    response = policy.allow(allowed(ALICE), request)

    assert "cookie" not in response.headers_to_set
    assert "cookie" not in response.headers_to_remove
    assert response.upstream_cookie == "theme=dark; my_access_token=x"


def test_token_cookies_are_kept_without_strip_credentials() -> None:
    policy = responses()
    request = with_cookie("access_token=T0K3N")

    response = policy.allow(allowed(ALICE), request)

    assert not policy.rewrites_cookies(request)
    assert "cookie" not in response.headers_to_set
    assert "cookie" not in response.headers_to_remove
    assert response.upstream_cookie == "access_token=T0K3N"


def test_method_override_headers_are_removed_by_default_and_kept_when_asked() -> None:
    removed = responses().allow(allowed(ALICE)).headers_to_remove
    kept = responses(method_overrides={"strip": False}).allow(allowed(ALICE)).headers_to_remove
    custom = responses(method_overrides={"headers": ["X-Tunnel-Method"]}).allow(allowed(None))

    assert set(removed) >= OVERRIDES
    assert not OVERRIDES & set(kept)
    assert "x-tunnel-method" in custom.headers_to_remove


def test_optional_identity_headers_are_set_when_named() -> None:
    policy = responses({"scopes": "x-user-scopes", "issuer": "x-user-issuer", "tier": None})
    headers = policy.allow(allowed(ALICE)).headers_to_set
    assert headers["x-user-scopes"] == "a b"
    assert headers["x-user-issuer"] == "https://idp.example"
    assert "x-user-tier" not in headers


def test_allow_metadata_describes_the_caller_for_rate_limiting() -> None:
    metadata = responses().allow(allowed(ALICE)).dynamic_metadata
    assert metadata == {
        "policy": "public",
        "rule": "api",
        "principal": "alice",
        "auth_method": "jwt",
        "tier": "gold",
        "roles": "admin,reader",
    }


def test_invalid_token_is_401_with_a_bearer_challenge_carrying_the_error() -> None:
    decision = Decision(
        Outcome.UNAUTHENTICATED,
        Reason.TOKEN_EXPIRED,
        "token has expired",
        bearer_error="invalid_token",
    )
    response = responses().deny(decision)
    assert response.status == 401
    assert response.headers["www-authenticate"] == (
        'Bearer realm="api \\"prod\\"", error="invalid_token", '
        'error_description="token has expired"'
    )
    assert response.headers[REASON_HEADER] == "token_expired"
    assert json.loads(response.body) == {
        "error": "unauthenticated",
        "reason": "token_expired",
        "message": "token has expired",
    }


def test_missing_credentials_challenge_carries_no_error() -> None:
    decision = Decision(
        Outcome.UNAUTHENTICATED, Reason.AUTHENTICATION_REQUIRED, "authentication required"
    )
    response = responses().deny(decision)
    assert response.headers["www-authenticate"] == 'Bearer realm="api \\"prod\\""'
    assert "error" not in response.headers["www-authenticate"]


def test_error_description_keeps_to_the_characters_rfc_6750_allows() -> None:
    # Messages can quote attacker-controlled token content (an alg, a claim name).
    message = "algorithm 'é\x01\"\\' is not accepted" + "x" * 1000
    decision = Decision(
        Outcome.UNAUTHENTICATED, Reason.UNSUPPORTED_ALGORITHM, message, bearer_error="invalid_token"
    )
    challenge = responses().deny(decision).headers["www-authenticate"]
    description = challenge.split('error_description="', 1)[1]
    assert all(0x20 <= ord(ch) <= 0x7E for ch in challenge)
    assert len(description) < 300


@pytest.mark.parametrize(
    ("outcome", "status", "error"),
    [
        (Outcome.FORBIDDEN, 403, "forbidden"),
        (Outcome.RATE_LIMITED, 429, "rate_limited"),
        (Outcome.UNAVAILABLE, 503, "unavailable"),
    ],
)
def test_other_denials_carry_status_reason_header_and_json_body(
    outcome: Outcome, status: int, error: str
) -> None:
    decision = Decision(outcome, Reason.MISSING_ROLE, "needs one of roles ['admin']", "admin")
    response = responses().deny(decision)
    assert response.status == status
    assert "www-authenticate" not in response.headers
    assert response.headers[REASON_HEADER] == "missing_role"
    assert response.headers["content-type"] == "application/json"
    assert json.loads(response.body)["error"] == error
    assert json.loads(response.body)["reason"] == "missing_role"
    assert response.dynamic_metadata["rule"] == "admin"


def test_deny_carries_extra_headers_of_the_decision() -> None:
    decision = Decision(
        Outcome.RATE_LIMITED, Reason.RATE_LIMITED, extra_headers={"retry-after": "3"}
    )
    assert responses().deny(decision).headers["retry-after"] == "3"


def test_a_refused_dpop_proof_is_answered_with_a_dpop_challenge_naming_the_algorithms() -> None:
    refused = Decision(
        Outcome.UNAUTHENTICATED,
        Reason.INVALID_DPOP_PROOF,
        "proof htm does not match the request method",
        bearer_error="invalid_dpop_proof",
    )
    challenge = responses().deny(refused).headers["www-authenticate"]
    assert challenge.startswith("DPoP realm=")
    assert 'algs="ES256 EdDSA PS256 RS256"' in challenge
    assert 'error="invalid_dpop_proof"' in challenge


def test_a_step_up_refusal_names_the_acr_values_and_max_age_in_its_challenge() -> None:
    refused = Decision(
        Outcome.UNAUTHENTICATED,
        Reason.INSUFFICIENT_USER_AUTHENTICATION,
        "authentication is older than the route accepts",
        bearer_error="insufficient_user_authentication",
        challenge={"acr_values": "urn:mfa", "max_age": "300"},
    )
    challenge = responses().deny(refused).headers["www-authenticate"]
    assert challenge.startswith("Bearer realm=")
    assert 'error="insufficient_user_authentication"' in challenge
    assert challenge.endswith(', acr_values="urn:mfa", max_age="300"')
