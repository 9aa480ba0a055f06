from __future__ import annotations

import base64
import json
import time
from typing import Any

import pytest

from authz_service.authn.tokens import TokenPeek, peek
from authz_service.decisions import AuthnFailure, Reason

PAYLOAD = {"iss": "https://idp.example", "sub": "alice", "exp": 2_000_000_000}


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def segment(value: Any) -> str:
    return b64(json.dumps(value).encode())


def token(
    header: Any | None = None, payload: Any | None = None, signature: str = "c2lnbmF0dXJl"
) -> str:
    header = {"alg": "RS256", "kid": "k1", "typ": "JWT"} if header is None else header
    return f"{segment(header)}.{segment(PAYLOAD if payload is None else payload)}.{signature}"


def failure(value: str, max_bytes: int = 8192) -> AuthnFailure:
    result = peek(value, max_bytes)
    assert isinstance(result, AuthnFailure), result
    return result


def test_peek_reads_alg_kid_and_issuer_without_verifying() -> None:
    result = peek(token(), 8192)
    assert isinstance(result, TokenPeek)
    assert (result.alg, result.kid, result.issuer) == ("RS256", "k1", "https://idp.example")


def test_peek_treats_a_non_string_issuer_as_no_issuer() -> None:
    result = peek(token(payload={"iss": ["https://idp.example"]}), 8192)
    assert isinstance(result, TokenPeek)
    assert result.issuer == ""


@pytest.mark.parametrize("alg", ["none", "RS256"])
def test_unsigned_token_is_refused_whatever_alg_it_claims(alg: str) -> None:
    result = failure(token({"alg": alg}, signature=""))
    assert result.reason is Reason.UNSUPPORTED_ALGORITHM


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        ({"jku": "https://evil.example/jwks.json"}, "jku"),
        ({"x5u": "https://evil.example/cert.pem"}, "x5u"),
        ({"jwk": {"kty": "RSA", "n": "AQAB", "e": "AQAB"}}, "jwk"),
        ({"x5c": ["MIIB"]}, "x5c"),
    ],
)
def test_token_naming_its_own_key_is_refused(extra: dict[str, Any], named: str) -> None:
    result = failure(token({"alg": "RS256", "kid": "k1", **extra}))
    assert result.reason is Reason.FORBIDDEN_TOKEN_HEADER
    assert named in result.message


def test_critical_header_extensions_are_refused() -> None:
    result = failure(token({"alg": "RS256", "crit": ["exp"], "exp": 1}))
    assert result.reason is Reason.FORBIDDEN_TOKEN_HEADER


@pytest.mark.parametrize("cty", ["JWT", "jwt"])
def test_nested_token_is_refused(cty: str) -> None:
    assert failure(token({"alg": "RS256", "cty": cty})).reason is Reason.MALFORMED_TOKEN


@pytest.mark.parametrize("typ", ["JWT", "at+jwt", "application/at+JWT"])
def test_access_token_types_are_accepted(typ: str) -> None:
    assert isinstance(peek(token({"alg": "RS256", "typ": typ}), 8192), TokenPeek)


@pytest.mark.parametrize("typ", ["JWE", "dpop+jwt", 1])
def test_other_token_types_are_refused(typ: Any) -> None:
    assert failure(token({"alg": "RS256", "typ": typ})).reason is Reason.MALFORMED_TOKEN


def test_duplicate_claims_make_the_token_malformed() -> None:
    payload = b'{"sub":"alice","sub":"admin","iss":"https://idp.example"}'
    value = f"{segment({'alg': 'RS256'})}.{b64(payload)}.c2ln"
    result = failure(value)
    assert result.reason is Reason.MALFORMED_TOKEN
    assert "duplicate" in result.message


def test_duplicate_header_members_make_the_token_malformed() -> None:
    header = b'{"alg":"RS256","alg":"none"}'
    assert failure(f"{b64(header)}.{segment(PAYLOAD)}.c2ln").reason is Reason.MALFORMED_TOKEN


def test_token_longer_than_the_limit_is_an_invalid_request() -> None:
    value = token(payload={**PAYLOAD, "pad": "x" * 200})
    result = failure(value, max_bytes=len(value) - 1)
    assert (result.reason, result.bearer_error) == (Reason.TOKEN_TOO_LARGE, "invalid_request")
    assert isinstance(peek(value, len(value)), TokenPeek)


@pytest.mark.parametrize(
    "value",
    [
        "",
        "garbage",
        "a.b",
        "a.b.c.d",
        ".payload.sig",
        "!!!.@@@.sig",
        "é.é.é",
        f"{b64(b'not json')}.{segment(PAYLOAD)}.sig",
        f"{segment([1, 2])}.{segment(PAYLOAD)}.sig",
        f"{segment({'alg': 'RS256'})}.{segment('a string')}.sig",
        f"{segment({'kid': 'k1'})}.{segment(PAYLOAD)}.sig",
        f"{segment({'alg': 'RS256', 'kid': 7})}.{segment(PAYLOAD)}.sig",
        "eyJ.eyJ.sig",
    ],
)
def test_garbage_is_a_malformed_token(value: str) -> None:
    assert failure(value).reason is Reason.MALFORMED_TOKEN


@pytest.mark.parametrize(
    "header",
    [
        # escaped quotes: each quote starts an unterminated string
        b"[" * 40 + b'"' + b'\\"' * 2700,
        b"[" * 40 + b'"\\' * 2700,
        b"[" * 3000,
        b"[" + b'{"a":[1]},' * 500 + b"1]",
    ],
    ids=["escaped-quotes", "quote-backslash", "deep", "many-shallow-objects"],
)
def test_hostile_nesting_is_judged_in_linear_time(header: bytes) -> None:
    """The nesting-depth check ran a regex that rescanned from every quote: 54 ms for one
    5 kB header. Best of five, so a busy machine does not fail it; linear is ~0.1 ms."""
    value = f"{b64(header)}.{segment(PAYLOAD)}.c2ln"
    timings = []
    for _ in range(5):
        started = time.perf_counter()
        failure(value)
        timings.append(time.perf_counter() - started)
    assert min(timings) < 0.005, timings
