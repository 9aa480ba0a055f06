"""DPoP proof verification (RFC 9449): each check refuses the proof it exists for."""

from __future__ import annotations

import json
import time
from typing import Any

import jwt
import pytest
from jwt.algorithms import ECAlgorithm

from authz_service.authn.dpop import DpopError, DpopVerifier, jwk_thumbprint, same_target
from authz_service.ratelimit.memory_store import MemoryStore
from authz_service.schema import DpopSettings
from tests.support.dpop_proofs import DpopClient

URL = "https://api.example/orders/7"
TOKEN = "access-token-value"
SETTINGS = DpopSettings(max_age_s=60, leeway_s=5)


def verify(verifier: DpopVerifier, proof: str, jkt: str, **request: Any) -> object:
    values: dict[str, Any] = {"method": "GET", "url": URL, "access_token": TOKEN}
    values.update(request)
    return verifier.verify(proof, settings=SETTINGS, jkt=jkt, now=time.time(), **values)


@pytest.fixture
def verifier() -> DpopVerifier:
    return DpopVerifier({"https://idp": SETTINGS}, MemoryStore("unit:"))


def test_rfc7638_thumbprint_matches_the_rfc_example() -> None:
    # RFC 7638 section 3.1: this RSA key's thumbprint.
    key = {
        "kty": "RSA",
        "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSo"
        "c_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0"
        "_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI"
        "4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
        "e": "AQAB",
        "alg": "RS256",
        "kid": "2011-04-29",
    }
    assert jwk_thumbprint(key) == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


def test_a_proof_by_the_bound_key_for_this_request_verifies(verifier: DpopVerifier) -> None:
    client = DpopClient()
    proof = verify(verifier, client.proof("GET", URL + "?q=1", TOKEN), client.jkt)
    assert getattr(proof, "jkt", None) == client.jkt


@pytest.mark.parametrize(
    ("make", "check"),
    [
        (lambda c: c.proof("POST", URL, TOKEN), "htm"),
        (lambda c: c.proof("GET", "https://api.example/other", TOKEN), "htu"),
        (lambda c: c.proof("GET", "http://api.example/orders/7", TOKEN), "htu"),
        (lambda c: c.proof("GET", URL, "another-token"), "ath"),
        (lambda c: c.proof("GET", URL, TOKEN, iat=time.time() - 600), "iat"),
        (lambda c: c.proof("GET", URL, TOKEN, iat=time.time() + 600), "iat"),
        (lambda c: c.proof("GET", URL, TOKEN, typ="JWT"), "typ"),
        (lambda c: DpopClient().proof("GET", URL, TOKEN), "bound to"),
        (lambda c: c.proof("GET", URL, TOKEN, jwk=DpopClient().public_jwk), "signature"),
        (lambda c: c.proof("GET", URL, TOKEN, jwk=_private_jwk(c)), "public key"),
        (lambda c: "not.a.jwt", "not a JWT"),
    ],
)
def test_a_proof_failing_one_check_is_refused_naming_that_check(
    verifier: DpopVerifier, make: Any, check: str
) -> None:
    client = DpopClient()
    with pytest.raises(DpopError, match=check) as refused:
        verify(verifier, make(client), client.jkt)
    assert TOKEN not in str(refused.value)


def _private_jwk(client: DpopClient) -> dict[str, Any]:
    jwk: dict[str, Any] = json.loads(ECAlgorithm.to_jwk(client.key))
    return jwk


def test_an_unsigned_proof_is_refused(verifier: DpopVerifier) -> None:
    client = DpopClient()
    claims = jwt.decode(client.proof("GET", URL, TOKEN), options={"verify_signature": False})
    headers = {"typ": "dpop+jwt", "jwk": client.public_jwk}
    unsigned = jwt.encode(claims, None, algorithm="none", headers=headers)
    with pytest.raises(DpopError, match="algorithm"):
        verify(verifier, unsigned, client.jkt)


async def test_a_proof_is_accepted_once_and_a_look_records_nothing(verifier: DpopVerifier) -> None:
    client = DpopClient()
    proof = verifier.verify(
        client.proof("GET", URL, TOKEN),
        settings=SETTINGS,
        method="GET",
        url=URL,
        access_token=TOKEN,
        jkt=client.jkt,
        now=time.time(),
    )
    now = time.time()
    assert await verifier.first_use(proof, SETTINGS, now, record=False)
    assert await verifier.first_use(proof, SETTINGS, now)
    assert not await verifier.first_use(proof, SETTINGS, now)


def test_targets_compare_scheme_host_and_path_only() -> None:
    assert same_target("HTTPS://API.example/a?x=1#f", "https://api.example/a")
    assert not same_target("https://api.example:8443/a", "https://api.example/a")
