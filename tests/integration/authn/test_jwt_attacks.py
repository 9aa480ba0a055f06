"""Attacks on JWT verification beyond the basics, with validly signed tokens where it matters.

The basics (alg none, HS256 signed with the RSA public key, jku, tampered payload, unknown
issuer/audience, oversized tokens) are in test_authenticator.py and tests/unit/authn. Here the
attacker controls a token's header and claims and, for the algorithm tests, even gets the IdP
to publish a key for an algorithm the provider does not pin.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm, RSAPSSAlgorithm

from authz_service.authn.authenticator import Authenticator
from authz_service.authn.jwks import JwksCache
from authz_service.decisions import AuthnFailure, Identity, Reason, RequestAttributes
from authz_service.schema import Config
from tests.support.authz_config import config_from, open_policy
from tests.support.idp import FakeClock, running_idp
from tools.dev_idp import DevIdentityProvider

RS_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_KEYS = {
    "ES256": ec.generate_private_key(ec.SECP256R1()),
    "ES384": ec.generate_private_key(ec.SECP384R1()),
    "ES512": ec.generate_private_key(ec.SECP521R1()),
}
ED_KEY = ed25519.Ed25519PrivateKey.generate()
UNPINNED_ASYMMETRIC = ["RS384", "RS512", "PS256", "PS384", "PS512", *EC_KEYS, "EdDSA"]


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def private_key_for(alg: str) -> Any:
    if alg.startswith(("RS", "PS")):
        return RS_KEY
    if alg == "EdDSA":
        return ED_KEY
    return EC_KEYS[alg]


def public_jwk(alg: str, kid: str, *, with_alg: bool = True) -> dict[str, Any]:
    public = private_key_for(alg).public_key()
    if alg.startswith("RS"):
        text = RSAAlgorithm.to_jwk(public)
    elif alg.startswith("PS"):
        text = RSAPSSAlgorithm.to_jwk(public)
    elif alg == "EdDSA":
        text = OKPAlgorithm.to_jwk(public)
    else:
        text = ECAlgorithm.to_jwk(public)
    jwk: dict[str, Any] = json.loads(text)
    jwk.update(kid=kid, use="sig")
    if with_alg:
        jwk["alg"] = alg
    return jwk


class Target:
    """An Authenticator whose provider pins RS256 (as config/local.yaml does)."""

    def __init__(self, idp: DevIdentityProvider, **provider: Any) -> None:
        self.idp = idp
        self.config: Config = config_from(
            {
                "jwt_providers": [
                    {
                        "name": "dev",
                        "issuer": idp.issuer,
                        "audiences": [idp.audience],
                        "jwks_uri": idp.jwks_uri,
                        "roles_claims": ["realm_access.roles"],
                        "leeway_s": 5,
                        "jwks": {"min_refetch_interval_s": 30, "fetch_timeout_s": 1},
                        **provider,
                    }
                ],
                "policies": open_policy(),
            }
        )
        self.clock = FakeClock()
        self.jwks = JwksCache(idp.jwks_uri, self.config.jwt_providers[0].jwks, clock=self.clock)
        self.authenticator = Authenticator(self.config, {idp.issuer: self.jwks})

    def publish(self, *extra: dict[str, Any]) -> None:
        """Serve the IdP's own keys plus `extra` (what a compromised or sloppy IdP might do)."""
        keys = self.idp.jwks()["keys"] + list(extra)
        self.idp.garbage_body = json.dumps({"keys": keys}).encode()

    def claims(self, **overrides: Any) -> dict[str, Any]:
        now = int(time.time())
        claims = {
            "iss": self.idp.issuer,
            "aud": self.idp.audience,
            "sub": "mallory",
            "iat": now,
            "exp": now + 300,
            "jti": "j-1",
            "realm_access": {"roles": ["admin"]},
        }
        claims.update(overrides)
        return claims

    def signed_raw(self, header: bytes, payload: bytes) -> str:
        """RS256 over exactly these header and payload bytes, with the IdP's real key."""
        signing_input = f"{b64(header)}.{b64(payload)}".encode()
        signer = RSAAlgorithm(RSAAlgorithm.SHA256)
        signature = signer.sign(signing_input, self.idp.signing_key.private_key)
        return f"{signing_input.decode()}.{b64(signature)}"

    def signed(self, claims: dict[str, Any], **header: Any) -> str:
        head = {"alg": "RS256", "typ": "JWT", "kid": self.idp.signing_key.kid, **header}
        return self.signed_raw(json.dumps(head).encode(), json.dumps(claims).encode())

    async def bearer(self, token: str) -> Identity | AuthnFailure | None:
        request = RequestAttributes(
            method="GET", host="api", path="/", headers={"authorization": f"Bearer {token}"}
        )
        return await self.authenticator.authenticate(request)

    async def reason(self, token: str) -> Reason:
        result = await self.bearer(token)
        assert isinstance(result, AuthnFailure), result
        return result.reason


@pytest.fixture(scope="module")
def shared_idp() -> Iterator[DevIdentityProvider]:
    with running_idp() as provider:
        yield provider


@pytest.fixture
def idp(shared_idp: DevIdentityProvider) -> Iterator[DevIdentityProvider]:
    """One IdP (one RSA key generation) for the module, reset around each test."""
    keys = list(shared_idp.keys)
    shared_idp.requests, shared_idp.garbage_body = 0, None
    yield shared_idp
    shared_idp.keys[:] = keys
    shared_idp.garbage_body = None


@pytest.fixture
async def target(idp: DevIdentityProvider) -> AsyncIterator[Target]:
    built = Target(idp)
    yield built
    await built.jwks.close()


async def test_the_baseline_token_verifies(target: Target) -> None:
    """Every attack below differs from this accepted token in one respect."""
    identity = await target.bearer(target.signed(target.claims()))
    assert isinstance(identity, Identity)
    assert identity.principal == "mallory"


# -- headers -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "crit",
    [["exp"], ["b64"], [], "exp", ["http://example.com/unknown"]],
    ids=["exp", "b64", "empty", "string", "url"],
)
async def test_validly_signed_token_with_crit_is_refused_before_any_key_lookup(
    target: Target, crit: Any
) -> None:
    token = target.signed(target.claims(), crit=crit, b64=True)
    assert await target.reason(token) is Reason.FORBIDDEN_TOKEN_HEADER
    assert target.idp.requests == 0


@pytest.mark.parametrize("cty", ["JWT", "jwt", "Jwt"])
async def test_nested_jwt_signed_by_the_idp_is_refused(target: Target, cty: str) -> None:
    inner = target.signed(target.claims(sub="admin"))
    outer = target.signed_raw(
        json.dumps({"alg": "RS256", "kid": target.idp.signing_key.kid, "cty": cty}).encode(),
        inner.encode(),
    )
    assert await target.reason(outer) is Reason.MALFORMED_TOKEN


async def test_jwt_whose_payload_is_another_jwt_is_refused(target: Target) -> None:
    inner = target.signed(target.claims(sub="admin"))
    outer = target.signed_raw(
        json.dumps({"alg": "RS256", "kid": target.idp.signing_key.kid}).encode(), inner.encode()
    )
    assert await target.reason(outer) is Reason.MALFORMED_TOKEN


@pytest.mark.parametrize(
    "kid",
    [
        "../../../../../../dev/null",
        "/etc/passwd",
        "..\\..\\windows\\win.ini",
        "' OR '1'='1",
        "x'; DROP TABLE keys; --",
        "k\u0000id",
        "${jndi:ldap://127.0.0.1/a}",
        "k" * 5000,
    ],
    ids=["traversal", "absolute", "backslash", "sql-or", "sql-drop", "nul", "jndi", "huge"],
)
async def test_hostile_kid_is_just_an_unknown_key(target: Target, kid: str) -> None:
    token = jwt.encode(target.claims(), target.idp.signing_key.private_key, "RS256", {"kid": kid})
    assert await target.reason(token) is Reason.UNKNOWN_KEY


async def test_a_flood_of_distinct_unknown_kids_causes_one_jwks_fetch(target: Target) -> None:
    for index in range(200):
        token = jwt.encode(
            target.claims(), target.idp.signing_key.private_key, "RS256", {"kid": f"probe-{index}"}
        )
        assert await target.reason(token) is Reason.UNKNOWN_KEY
    assert target.idp.requests == 1


@pytest.mark.parametrize("typ", ["JWE", "dpop+jwt", "secevent+jwt", "", "JOSE+JSON", 7])
async def test_validly_signed_token_of_another_type_is_refused(target: Target, typ: Any) -> None:
    head = json.dumps({"alg": "RS256", "kid": target.idp.signing_key.kid, "typ": typ}).encode()
    token = target.signed_raw(head, json.dumps(target.claims()).encode())
    assert await target.reason(token) is Reason.MALFORMED_TOKEN


# -- duplicate members ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "payload_template",
    [
        '{{"iss":"{iss}","aud":"{aud}","sub":"mallory","sub":"admin","exp":{exp}}}',
        '{{"iss":"{iss}","aud":"{aud}","sub":"mallory","exp":1,"exp":{exp}}}',
        '{{"iss":"https://evil.example","iss":"{iss}","aud":"{aud}","sub":"m","exp":{exp}}}',
        '{{"iss":"{iss}","aud":"{aud}","sub":"m","exp":{exp},'
        '"realm_access":{{"roles":[],"roles":["admin"]}}}}',
    ],
    ids=["sub", "exp", "iss", "nested-roles"],
)
async def test_validly_signed_token_with_duplicate_claims_is_refused(
    target: Target, payload_template: str
) -> None:
    payload = payload_template.format(
        iss=target.idp.issuer, aud=target.idp.audience, exp=int(time.time()) + 300
    )
    head = json.dumps({"alg": "RS256", "kid": target.idp.signing_key.kid}).encode()
    assert await target.reason(target.signed_raw(head, payload.encode())) is Reason.MALFORMED_TOKEN


async def test_duplicate_alg_in_a_signed_header_is_refused(target: Target) -> None:
    head = b'{"alg":"none","alg":"RS256","kid":"' + target.idp.signing_key.kid.encode() + b'"}'
    token = target.signed_raw(head, json.dumps(target.claims()).encode())
    assert await target.reason(token) is Reason.MALFORMED_TOKEN


# -- numeric edge values ---------------------------------------------------------------------------

FAR_FUTURE = 10**12


@pytest.mark.parametrize(
    ("exp", "reason"),
    [
        (-1, Reason.TOKEN_EXPIRED),
        (0, Reason.TOKEN_EXPIRED),
        (True, Reason.TOKEN_EXPIRED),  # bool is an int to Python: 1, long expired
        (False, Reason.TOKEN_EXPIRED),
        ("NaN", Reason.MALFORMED_TOKEN),
        ("9999999999", Reason.MALFORMED_TOKEN),  # a number in a string is not a NumericDate
        ("", Reason.MALFORMED_TOKEN),
        ([FAR_FUTURE], Reason.MALFORMED_TOKEN),
        ({"$gt": 0}, Reason.MALFORMED_TOKEN),
        (None, Reason.MISSING_CLAIM),
        (-(10**400), Reason.TOKEN_EXPIRED),
    ],
    ids=[
        "negative",
        "zero",
        "true",
        "false",
        "nan-string",
        "numeric-string",
        "empty-string",
        "list",
        "object",
        "null",
        "huge-negative",
    ],
)
async def test_exp_edge_values_are_refused(target: Target, exp: Any, reason: Reason) -> None:
    assert await target.reason(target.signed(target.claims(exp=exp))) is reason


@pytest.mark.parametrize(
    "exp_json",
    ["NaN", "Infinity", "-Infinity", "1e400", "1" + "0" * 400, "1.5e308"],
)
async def test_non_finite_and_overflowing_exp_are_refused_not_crashing(
    target: Target, exp_json: str
) -> None:
    claims = target.claims(exp="EXP")
    payload = json.dumps(claims).replace('"EXP"', exp_json).encode()
    head = json.dumps({"alg": "RS256", "kid": target.idp.signing_key.kid}).encode()
    result = await target.bearer(target.signed_raw(head, payload))
    # 1.5e308 is a real (absurd) expiry without a lifetime cap; everything else is malformed.
    if exp_json == "1.5e308":
        assert isinstance(result, Identity)
    else:
        assert isinstance(result, AuthnFailure), result
        assert result.reason in {Reason.MALFORMED_TOKEN, Reason.TOKEN_EXPIRED}


async def test_float_exp_in_the_future_is_a_valid_numeric_date(target: Target) -> None:
    identity = await target.bearer(target.signed(target.claims(exp=time.time() + 60.5)))
    assert isinstance(identity, Identity)


@pytest.mark.parametrize("exp", [FAR_FUTURE, 2**63, 10**400, 1.5e308])
async def test_far_future_exp_is_refused_by_the_lifetime_cap(
    idp: DevIdentityProvider, exp: int | float
) -> None:
    target = Target(idp, max_lifetime_s=3600)
    try:
        assert await target.reason(target.signed(target.claims(exp=exp))) is (
            Reason.TOKEN_LIFETIME_TOO_LONG
        )
    finally:
        await target.jwks.close()


@pytest.mark.parametrize(
    ("iat", "reason"),
    [
        (FAR_FUTURE, Reason.TOKEN_NOT_YET_VALID),
        ("1700000000", Reason.MALFORMED_TOKEN),
        ("soon", Reason.TOKEN_NOT_YET_VALID),
        (None, Reason.MISSING_CLAIM),
    ],
    ids=["future", "numeric-string", "string", "null"],
)
async def test_iat_edge_values_under_a_lifetime_cap_are_refused(
    idp: DevIdentityProvider, iat: Any, reason: Reason
) -> None:
    target = Target(idp, max_lifetime_s=3600)
    try:
        assert await target.reason(target.signed(target.claims(iat=iat))) is reason
    finally:
        await target.jwks.close()


async def test_huge_iat_without_a_cap_is_refused_not_crashing(target: Target) -> None:
    claims = target.claims(iat="IAT")
    payload = json.dumps(claims).replace('"IAT"', "1" + "0" * 400).encode()
    head = json.dumps({"alg": "RS256", "kid": target.idp.signing_key.kid}).encode()
    result = await target.bearer(target.signed_raw(head, payload))
    assert isinstance(result, AuthnFailure), result


@pytest.mark.parametrize("nbf", [FAR_FUTURE, time.time() + 600])
async def test_future_nbf_is_refused(target: Target, nbf: float) -> None:
    assert await target.reason(target.signed(target.claims(nbf=nbf))) is Reason.TOKEN_NOT_YET_VALID


# -- size --------------------------------------------------------------------------------------


async def test_megabyte_token_is_refused_quickly_without_a_fetch(target: Target) -> None:
    token = target.signed(target.claims(pad="x" * 1_000_000))
    started = time.perf_counter()
    result = await target.bearer(token)
    elapsed = time.perf_counter() - started
    assert isinstance(result, AuthnFailure)
    assert (result.reason, result.bearer_error) == (Reason.TOKEN_TOO_LARGE, "invalid_request")
    assert elapsed < 0.05
    assert target.idp.requests == 0


async def test_token_one_byte_over_the_limit_is_refused_and_at_the_limit_accepted(
    idp: DevIdentityProvider,
) -> None:
    probe = Target(idp)
    at_limit = probe.signed(probe.claims(pad="x" * 30))
    over = at_limit + "A"  # one byte more, and still the same signed token otherwise
    await probe.jwks.close()
    target = Target(idp, max_token_bytes=len(at_limit))
    try:
        assert isinstance(await target.bearer(at_limit), Identity)
        assert await target.reason(over) is Reason.TOKEN_TOO_LARGE
    finally:
        await target.jwks.close()


# -- algorithms --------------------------------------------------------------------------------


@pytest.mark.parametrize("alg", UNPINNED_ASYMMETRIC)
async def test_every_unpinned_asymmetric_algorithm_is_refused_even_with_a_published_key(
    target: Target, alg: str
) -> None:
    kid = f"extra-{alg}"
    target.publish(public_jwk(alg, kid))
    token = jwt.encode(target.claims(), private_key_for(alg), alg, {"kid": kid})
    assert await target.reason(token) is Reason.UNSUPPORTED_ALGORITHM


@pytest.mark.parametrize("alg", UNPINNED_ASYMMETRIC)
async def test_unpinned_algorithm_naming_the_idps_own_kid_is_refused(
    target: Target, alg: str
) -> None:
    token = jwt.encode(
        target.claims(), private_key_for(alg), alg, {"kid": target.idp.signing_key.kid}
    )
    assert await target.reason(token) is Reason.UNSUPPORTED_ALGORITHM


@pytest.mark.parametrize("alg", ["HS256", "HS384", "HS512"])
@pytest.mark.parametrize("secret_from", ["pem", "der", "jwk-n", "kid"])
async def test_hmac_with_any_public_material_as_the_secret_is_refused(
    target: Target, alg: str, secret_from: str
) -> None:
    public = target.idp.signing_key.private_key.public_key()
    secrets = {
        "pem": public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
        "der": public.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
        "jwk-n": target.idp.signing_key.public_jwk()["n"].encode(),
        "kid": target.idp.signing_key.kid.encode(),
    }
    digest = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}[alg]
    head = json.dumps({"alg": alg, "typ": "JWT", "kid": target.idp.signing_key.kid}).encode()
    signing_input = f"{b64(head)}.{b64(json.dumps(target.claims()).encode())}"
    mac = hmac.new(secrets[secret_from], signing_input.encode(), digest).digest()
    assert await target.reason(f"{signing_input}.{b64(mac)}") is Reason.UNSUPPORTED_ALGORITHM


async def test_hmac_key_published_in_the_jwks_is_never_loaded(target: Target) -> None:
    secret = b"s" * 32
    target.publish({"kty": "oct", "kid": "shared", "k": b64(secret), "alg": "HS256"})
    token = jwt.encode(target.claims(), secret, "HS256", {"kid": "shared"})
    assert await target.reason(token) is Reason.UNSUPPORTED_ALGORITHM
    await target.jwks.refetch_if_allowed()
    assert "shared" not in target.jwks.keys


@pytest.mark.parametrize("alg", ["none", "None", "NONE", "nOnE", "rs256", "RS256 ", " RS256", ""])
async def test_alg_spellings_other_than_the_pinned_one_are_refused(
    target: Target, alg: str
) -> None:
    token = target.signed(target.claims(), alg=alg)
    assert await target.reason(token) in {Reason.UNSUPPORTED_ALGORITHM, Reason.MALFORMED_TOKEN}


async def test_pinned_algorithm_cannot_borrow_a_key_published_for_another(
    idp: DevIdentityProvider,
) -> None:
    """Both RS256 and ES256 are pinned; an ES256 header must not verify against an RSA key."""
    target = Target(idp, algorithms=["RS256", "ES256"])
    try:
        target.publish(public_jwk("ES256", "ec-key"))
        rsa_kid = target.idp.signing_key.kid
        forged = jwt.encode(target.claims(), EC_KEYS["ES256"], "ES256", {"kid": rsa_kid})
        assert await target.reason(forged) is Reason.UNSUPPORTED_ALGORITHM
        # The EC key itself, under its own kid, is fine.
        good = jwt.encode(target.claims(), EC_KEYS["ES256"], "ES256", {"kid": "ec-key"})
        assert isinstance(await target.bearer(good), Identity)
    finally:
        await target.jwks.close()


async def test_key_without_alg_in_the_jwks_still_refuses_a_mismatched_algorithm(
    idp: DevIdentityProvider,
) -> None:
    target = Target(idp, algorithms=["RS256", "PS256"])
    try:
        target.idp.garbage_body = json.dumps(
            {"keys": [public_jwk("RS256", "no-alg", with_alg=False)]}
        ).encode()
        ps = jwt.encode(target.claims(), RS_KEY, "PS256", {"kid": "no-alg"})
        rs = jwt.encode(target.claims(), RS_KEY, "RS256", {"kid": "no-alg"})
        # Without `alg` on the key both pinned RSA algorithms may use it; the signature must
        # still be by that key, and an unpinned one stays refused.
        assert isinstance(await target.bearer(rs), Identity)
        assert isinstance(await target.bearer(ps), Identity)
        es = jwt.encode(target.claims(), EC_KEYS["ES256"], "ES256", {"kid": "no-alg"})
        assert await target.reason(es) is Reason.UNSUPPORTED_ALGORITHM
    finally:
        await target.jwks.close()


async def test_token_without_kid_is_refused_when_the_jwks_has_several_keys(
    target: Target,
) -> None:
    target.idp.rotate()
    target.publish()
    token = jwt.encode(target.claims(), target.idp.keys[1].private_key, "RS256")
    assert await target.reason(token) is Reason.UNKNOWN_KEY


# -- unparseable tokens --------------------------------------------------------------------------
# Each is signed with the IdP's real key over exactly these bytes, so only parsing can refuse it.
# A token that cannot be parsed is a 401 invalid_token like any bad token: never an exception
# (which Check turned into a 503 with a stack trace and no brute-force count).

KID = b'"kid":"KID"'
DEEP = 5000  # far past Python's recursion limit; the roomy target accepts tokens this large


def nested(depth: int, opener: bytes, closer: bytes, core: bytes = b"1") -> bytes:
    return opener * depth + core + closer * depth


UNPARSEABLE_HEADERS = {
    "deep-array": nested(DEEP, b"[", b"]"),
    "deep-object": nested(DEEP, b'{"a":', b"}"),
    "deep-member": b'{"alg":"RS256",' + KID + b',"x":' + nested(DEEP, b"[", b"]") + b"}",
    "deep-mixed": b'{"alg":"RS256","x":' + nested(DEEP // 2, b'[{"b":', b"}]") + b"}",
    "moderately-deep-member": b'{"alg":"RS256",' + KID + b',"x":' + nested(40, b"[", b"]") + b"}",
    "huge-integer": b'{"alg":"RS256",' + KID + b',"x":' + b"9" * 5000 + b"}",
    "nan-literal": b'{"alg":"RS256",' + KID + b',"x":NaN}',
    "infinity-literal": b'{"alg":"RS256",' + KID + b',"x":-Infinity}',
    "invalid-utf8": b'{"alg":"RS256","kid":"\xff\xfe"}',
    "overlong-utf8": b'{"alg":"RS256","kid":"\xc0\xaf"}',
    "lone-surrogate-escape": b'{"alg":"RS256","kid":"\\ud800"}',
    "utf16": '{"alg":"RS256","kid":"KID"}'.encode("utf-16"),
    "utf8-bom": b'\xef\xbb\xbf{"alg":"RS256",' + KID + b"}",
    "trailing-garbage": b'{"alg":"RS256",' + KID + b"}x",
    "two-objects": b'{"alg":"RS256",' + KID + b"}{}",
    "array": b'["RS256"]',
    "string": b'"RS256"',
    "number": b"256",
    "null": b"null",
    "empty": b"",
    "binary": bytes(range(256)),
}


@pytest.fixture
async def roomy(idp: DevIdentityProvider) -> AsyncIterator[Target]:
    """A provider that accepts tokens of up to 64 KiB, room for deep nesting."""
    built = Target(idp, max_token_bytes=65536)
    yield built
    await built.jwks.close()


def with_kid(raw: bytes, target: Target) -> bytes:
    return raw.replace(b"KID", target.idp.signing_key.kid.encode())


async def assert_unparseable(target: Target, token: str) -> None:
    result = await target.bearer(token)
    assert isinstance(result, AuthnFailure), result
    assert (result.reason, result.bearer_error) == (Reason.MALFORMED_TOKEN, "invalid_token")
    assert target.idp.requests == 0  # refused before any key lookup


@pytest.mark.parametrize("header", UNPARSEABLE_HEADERS.values(), ids=UNPARSEABLE_HEADERS.keys())
async def test_unparseable_header_is_a_malformed_token_not_an_error(
    roomy: Target, header: bytes
) -> None:
    payload = json.dumps(roomy.claims()).encode()
    await assert_unparseable(roomy, roomy.signed_raw(with_kid(header, roomy), payload))


UNPARSEABLE_PAYLOADS = {
    **UNPARSEABLE_HEADERS,
    "deep-member": b'{"iss":"ISS","sub":' + nested(DEEP, b"[", b"]") + b"}",
    "huge-integer": b'{"iss":"ISS","exp":' + b"9" * 5000 + b"}",
}


@pytest.mark.parametrize("payload", UNPARSEABLE_PAYLOADS.values(), ids=UNPARSEABLE_PAYLOADS.keys())
async def test_unparseable_payload_is_a_malformed_token_not_an_error(
    roomy: Target, payload: bytes
) -> None:
    head = json.dumps({"alg": "RS256", "kid": roomy.idp.signing_key.kid}).encode()
    payload = payload.replace(b"ISS", roomy.idp.issuer.encode())
    await assert_unparseable(roomy, roomy.signed_raw(head, with_kid(payload, roomy)))


@pytest.mark.parametrize(
    "spoil",
    [
        lambda h: h[:5] + "+" + h[5:],  # the standard alphabet, not base64url
        lambda h: h[:5] + "/" + h[5:],
        lambda h: h + "==",  # padding: RFC 7515 compact serialisation has none
        lambda h: h[:5] + " " + h[5:],  # whitespace that a lenient decoder skips
        lambda h: h[:5] + "\x00" + h[5:],
        lambda h: h[:5] + "é" + h[5:],
        lambda h: h + "A",  # a length no base64 encoding has
        lambda h: h[:5] + "%3D" + h[5:],
    ],
    ids=["plus", "slash", "padding", "space", "nul", "non-ascii", "bad-length", "percent"],
)
async def test_header_outside_the_base64url_alphabet_is_a_malformed_token(
    target: Target, spoil: Any
) -> None:
    header, payload, signature = target.signed(target.claims()).split(".")
    await assert_unparseable(target, f"{spoil(header)}.{payload}.{signature}")


async def test_an_unparseable_token_is_logged_in_one_line_without_the_token(
    roomy: Target, caplog: pytest.LogCaptureFixture
) -> None:
    header = with_kid(UNPARSEABLE_HEADERS["deep-member"], roomy)
    token = roomy.signed_raw(header, json.dumps(roomy.claims()).encode())
    with caplog.at_level("DEBUG", logger="authz_service"):
        await assert_unparseable(roomy, token)
    lines = [r for r in caplog.records if r.name.startswith("authz_service")]
    assert len(lines) == 1, lines
    assert lines[0].exc_info is None and "\n" not in lines[0].getMessage()
    assert token.split(".")[0][:16] not in lines[0].getMessage()
