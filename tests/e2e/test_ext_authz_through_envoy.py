"""What a client of the gateway sees, and what the upstream receives, through a real Envoy,
whether it asks over gRPC Check or over HTTP (`http_service` to granian): the same answers."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import signal
import time
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from tests.e2e.conftest import Stack
from tests.e2e.test_gateway_canary import audit_entry_for
from tests.support.raw_http import send_raw
from tools.dev_idp import new_rsa_key

pytestmark = pytest.mark.envoy


@pytest.fixture(scope="module")
def stack(stack_on_each_transport: Stack) -> Stack:
    return stack_on_each_transport


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def get(
    stack: Stack,
    path: str,
    headers: dict[str, str] | None = None,
    *,
    internal: bool = False,
    method: str = "GET",
) -> httpx.Response:
    base = stack.internal_url if internal else stack.public_url
    with stack.client() as client:
        return client.request(method, base + path, headers=headers or {})


def assert_denied(response: httpx.Response, status: int, reason: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["x-authz-reason"] == reason
    body: dict[str, Any] = response.json()
    assert body["reason"] == reason
    return body


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forge(header: dict[str, Any], claims: dict[str, Any], signature: bytes = b"") -> str:
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
    return f"{signing_input}.{b64(signature)}" if signature else f"{signing_input}."


def claims_for(stack: Stack, **overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {
        "iss": stack.idp.issuer,
        "aud": stack.idp.audience,
        "sub": "mallory",
        "iat": now,
        "exp": now + 300,
        "realm_access": {"roles": ["admin"]},
    }
    claims.update(overrides)
    return claims


# -- allowed ---------------------------------------------------------------------------------


def test_valid_token_is_allowed_and_upstream_sees_identity_headers(stack: Stack) -> None:
    token = stack.idp.mint(
        "alice", roles=["editor"], extra_claims={"tier": "gold", "email": "a@x.io"}
    )

    response = get(stack, "/api/orders", bearer(token))

    assert response.status_code == 200, stack.logs()
    seen = response.json()["headers"]
    assert seen["x-user-id"] == "alice"
    assert seen["x-user-roles"] == "editor"
    assert seen["x-user-tier"] == "gold"
    assert seen["x-user-email"] == "a@x.io"
    assert seen["x-auth-method"] == "jwt"
    # strip_credentials: the upstream never sees the bearer token.
    assert "authorization" not in seen


def test_token_from_cookie_is_accepted(stack: Stack) -> None:
    token = stack.idp.mint("carol", roles=["reader"])

    response = get(stack, "/api/orders", {"cookie": f"theme=dark; access_token={token}"})

    assert response.status_code == 200
    assert response.json()["headers"]["x-user-id"] == "carol"


def test_anonymous_route_is_allowed_without_credentials(stack: Stack) -> None:
    response = get(stack, "/public/hello")

    assert response.status_code == 200
    assert response.json()["path"] == "/public/hello"


def test_spoofed_identity_headers_are_replaced_or_removed(stack: Stack) -> None:
    token = stack.idp.mint("alice", roles=["editor"])
    spoofed = {"x-user-id": "root", "x-user-roles": "admin", "x-user-tier": "platinum"}

    authenticated = get(stack, "/api/orders", {**bearer(token), **spoofed}).json()["headers"]
    anonymous = get(stack, "/public/page", spoofed).json()["headers"]

    assert authenticated["x-user-id"] == "alice"
    assert authenticated["x-user-roles"] == "editor"
    assert "x-user-tier" not in authenticated  # alice has no tier: the client's copy is gone
    assert not {"x-user-id", "x-user-roles", "x-user-tier"} & anonymous.keys()


# -- 401: no or invalid credentials ----------------------------------------------------------


def test_missing_token_is_401_with_a_bearer_challenge(stack: Stack) -> None:
    response = get(stack, "/api/orders")

    assert_denied(response, 401, "authentication_required")
    assert response.headers["www-authenticate"] == 'Bearer realm="authz-service"'


def test_expired_token_is_401_invalid_token(stack: Stack) -> None:
    token = stack.idp.mint("alice", now=time.time() - 3600, lifetime_s=60)

    response = get(stack, "/api/orders", bearer(token))

    assert_denied(response, 401, "token_expired")
    assert 'error="invalid_token"' in response.headers["www-authenticate"]


def test_token_not_yet_valid_is_401(stack: Stack) -> None:
    token = stack.idp.mint("alice", now=time.time() + 600)

    assert_denied(get(stack, "/api/orders", bearer(token)), 401, "token_not_yet_valid")


def test_token_from_an_unknown_issuer_is_401(stack: Stack) -> None:
    token = stack.idp.mint("alice", extra_claims={"iss": "https://evil.example/realms/demo"})

    assert_denied(get(stack, "/api/orders", bearer(token)), 401, "unknown_issuer")


def test_token_for_another_audience_is_401(stack: Stack) -> None:
    token = stack.idp.mint("alice", extra_claims={"aud": "some-other-api"})

    assert_denied(get(stack, "/api/orders", bearer(token)), 401, "wrong_audience")


def test_token_with_a_tampered_payload_fails_signature_check(stack: Stack) -> None:
    header, _, signature = stack.idp.mint("alice", roles=["reader"]).split(".")
    payload = b64(json.dumps(claims_for(stack)).encode())

    response = get(stack, "/admin/users", bearer(f"{header}.{payload}.{signature}"))

    assert_denied(response, 401, "bad_signature")


def test_unsigned_alg_none_token_is_401(stack: Stack) -> None:
    token = forge(
        {"alg": "none", "typ": "JWT", "kid": stack.idp.signing_key.kid}, claims_for(stack)
    )

    response = get(stack, "/admin/users", bearer(token))

    assert response.status_code == 401
    assert response.headers["x-authz-reason"] in {"unsupported_algorithm", "malformed_token"}


def test_hs256_signed_with_the_rsa_public_key_is_401(stack: Stack) -> None:
    public_pem = stack.idp.signing_key.private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header = {"alg": "HS256", "typ": "JWT", "kid": stack.idp.signing_key.kid}
    unsigned = forge(header, claims_for(stack)).rstrip(".")
    signature = hmac.new(public_pem, unsigned.encode(), hashlib.sha256).digest()

    response = get(stack, "/admin/users", bearer(f"{unsigned}.{b64(signature)}"))

    assert_denied(response, 401, "unsupported_algorithm")


def test_token_naming_its_own_key_via_jku_is_401(stack: Stack) -> None:
    attacker = new_rsa_key("attacker")
    token = jwt.encode(
        claims_for(stack),
        attacker.private_key,
        algorithm="RS256",
        headers={"kid": "attacker", "jku": "http://127.0.0.1:1/evil-jwks.json"},
    )

    assert_denied(get(stack, "/admin/users", bearer(token)), 401, "forbidden_token_header")


def test_malformed_token_is_401(stack: Stack) -> None:
    assert_denied(get(stack, "/api/orders", bearer("not.a-token")), 401, "malformed_token")


def test_oversized_token_is_401_invalid_request(stack: Stack) -> None:
    token = stack.idp.mint("alice", extra_claims={"padding": "x" * 12_000})

    response = get(stack, "/api/orders", bearer(token))

    assert_denied(response, 401, "token_too_large")
    assert 'error="invalid_request"' in response.headers["www-authenticate"]


def test_unknown_kid_is_401_until_the_idp_publishes_the_rotated_key(stack: Stack) -> None:
    future_key = new_rsa_key()
    early = stack.idp.mint("alice", roles=["editor"], key=future_key)
    assert_denied(get(stack, "/api/orders", bearer(early)), 401, "unknown_key")

    stack.idp.keys.insert(0, future_key)  # the IdP rotates to the new key
    time.sleep(1.2)  # past min_refetch_interval_s (1 s in the test config)
    rotated = stack.idp.mint("alice", roles=["editor"])

    response = get(stack, "/api/orders", bearer(rotated))
    assert response.status_code == 200, response.text
    assert response.json()["headers"]["x-user-id"] == "alice"


# -- 403: authenticated, not allowed -----------------------------------------------------------


def test_authenticated_caller_without_the_role_is_403(stack: Stack) -> None:
    token = stack.idp.mint("alice", roles=["editor"])

    body = assert_denied(get(stack, "/admin/users", bearer(token)), 403, "missing_role")

    assert body["error"] == "forbidden"


def test_admin_role_opens_the_admin_route(stack: Stack) -> None:
    token = stack.idp.mint("root", roles=["admin"])

    assert get(stack, "/admin/users", bearer(token)).status_code == 200


def test_reader_cannot_write_but_can_read(stack: Stack) -> None:
    token = stack.idp.mint("rita", roles=["reader"])

    assert get(stack, "/api/orders", bearer(token)).status_code == 200
    assert_denied(get(stack, "/api/orders", bearer(token), method="POST"), 403, "missing_role")


@pytest.mark.parametrize(
    "path",
    ["/public/../admin/users", "/public/%2e%2e/admin/users", "//admin//users",
     "/public/..;/admin/users", "/public/%2e%2e;/admin/users", "/admin;x/users"],
)  # fmt: skip
def test_path_tricks_do_not_bypass_the_admin_rule(stack: Stack, path: str) -> None:
    # Sent as written: httpx would resolve `/public/../admin` before Envoy ever saw it.
    token = stack.idp.mint("alice", roles=["editor"])

    response = send_raw(stack.public_url, path, headers=bearer(token), ca_file=stack.ca_file)
    assert response.status in {400, 403}, (path, response.status, response.body[:200])


def test_unmatched_path_is_denied_by_default(stack: Stack) -> None:
    token = stack.idp.mint("alice", roles=["admin"])

    assert_denied(get(stack, "/not-in-any-rule", bearer(token)), 403, "no_matching_rule")


# -- listeners and policies --------------------------------------------------------------------


def test_internal_paths_are_not_reachable_from_the_public_listener(stack: Stack) -> None:
    response = get(stack, "/internal/jobs", {"x-api-key": "dev-only-api-key"})

    # The public policy has no rule for internal paths, whatever the credential.
    assert_denied(response, 403, "no_matching_rule")


def test_internal_listener_accepts_the_service_api_key(stack: Stack) -> None:
    response = get(stack, "/internal/jobs", {"x-api-key": "dev-only-api-key"}, internal=True)

    assert response.status_code == 200
    seen = response.json()["headers"]
    assert seen["x-user-id"] == "svc:billing-batch"
    assert seen["x-auth-method"] == "api_key"
    assert "x-api-key" not in seen


def test_wrong_api_key_is_401(stack: Stack) -> None:
    response = get(stack, "/internal/jobs", {"x-api-key": "guess"}, internal=True)

    assert_denied(response, 401, "invalid_api_key")


def test_user_token_cannot_use_internal_service_routes(stack: Stack) -> None:
    token = stack.idp.mint("root", roles=["admin", "internal-service"])

    response = get(stack, "/internal/jobs", bearer(token), internal=True)

    assert_denied(response, 403, "principal_not_allowed")


@pytest.mark.parametrize("path", ["/admin/users", "/api/orders"])
def test_the_internal_listener_is_no_way_around_the_public_rules(stack: Stack, path: str) -> None:
    # A user token that the public listener refuses for /admin/ gets no further here: the
    # internal policy has no rule for anything but /internal/, so it denies by default.
    token = stack.idp.mint("mallory", roles=["user"])

    response = get(stack, path, bearer(token), internal=True)

    assert_denied(response, 403, "no_matching_rule")


def test_the_client_address_is_the_one_envoy_saw_not_a_forwarded_for_claim(stack: Stack) -> None:
    # The edge trusts no x-forwarded-for hop: lockout and client-IP quotas key on the peer.
    token = stack.idp.mint("carol", roles=["reader"])

    response = get(stack, "/api/orders", {**bearer(token), "x-forwarded-for": "203.0.113.9"})

    assert response.status_code == 200, stack.logs()
    audit = audit_entry_for(stack, response.headers["x-request-id"])
    assert audit["client"]["ip"] == "127.0.0.1"


# -- operations ----------------------------------------------------------------------------------


def test_sighup_reload_applies_a_good_file_and_keeps_the_old_one_on_a_bad_file(
    stack: Stack,
) -> None:
    original = stack.config_path.read_text()
    try:
        stack.config_path.write_text(original.replace("prefix: /public/", "prefix: /open/"))
        stack.authz.popen.send_signal(signal.SIGHUP)
        assert _eventually(lambda: get(stack, "/open/page").status_code == 200), stack.logs()

        rejected = stack.authz.log().count("config reload rejected")
        stack.config_path.write_text(original + "\nthis is: [not valid yaml\n")
        stack.authz.popen.send_signal(signal.SIGHUP)
        # The rejection itself, not a pause, says the bad file was read and refused.
        assert _eventually(lambda: stack.authz.log().count("config reload rejected") > rejected), (
            stack.logs()
        )
        assert get(stack, "/open/page").status_code == 200  # the last good config stays
    finally:
        stack.config_path.write_text(original)
        stack.authz.popen.send_signal(signal.SIGHUP)
        assert _eventually(lambda: get(stack, "/public/page").status_code == 200)


def _eventually(condition: Any, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return False
