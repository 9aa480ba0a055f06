"""Cheap, unverified inspection of a compact JWS, done before any signature check.

Everything read here is attacker-controlled: it only decides which provider and key to try
and rejects tokens that no provider could accept. Nothing read here is ever trusted.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from authz_service.authn.strict_json import SegmentError, decode_segment
from authz_service.decisions import AuthnFailure, Reason

# Header parameters that let a token choose its own verification key: never honoured.
KEY_SELECTING_HEADERS = frozenset({"jku", "x5u", "jwk", "x5c"})
ACCEPTED_TYP = frozenset({"jwt", "at+jwt", "application/jwt", "application/at+jwt"})


@dataclass(frozen=True, slots=True)
class TokenPeek:
    header: Mapping[str, Any]
    payload: Mapping[str, Any]

    @property
    def alg(self) -> str:
        return str(self.header.get("alg", ""))

    @property
    def kid(self) -> str:
        value = self.header.get("kid", "")
        return value if isinstance(value, str) else ""

    @property
    def issuer(self) -> str:
        value = self.payload.get("iss", "")
        return value if isinstance(value, str) else ""


def _malformed(message: str) -> AuthnFailure:
    return AuthnFailure(Reason.MALFORMED_TOKEN, message)


def peek(token: str, max_bytes: int) -> TokenPeek | AuthnFailure:
    """Parse header and payload of a compact JWS and apply the structural rules."""
    if len(token) > max_bytes:
        return AuthnFailure(
            Reason.TOKEN_TOO_LARGE, f"token longer than {max_bytes} bytes", "invalid_request"
        )
    parts = token.split(".")
    if len(parts) != 3 or not all(parts[:2]):
        return _malformed("not a compact JWS (header.payload.signature)")
    if not parts[2]:
        return AuthnFailure(Reason.UNSUPPORTED_ALGORITHM, "unsigned tokens are not accepted")
    try:
        header = decode_segment(parts[0])
        payload = decode_segment(parts[1])
    except SegmentError as error:
        return _malformed(str(error))
    if not isinstance(header, dict) or not isinstance(payload, dict):
        return _malformed("token header and payload must be JSON objects")
    forbidden = KEY_SELECTING_HEADERS.intersection(header)
    if forbidden:
        return AuthnFailure(
            Reason.FORBIDDEN_TOKEN_HEADER,
            f"token names its own key ({', '.join(sorted(forbidden))}); "
            "keys come from the JWKS only",
        )
    if "crit" in header:
        # RFC 7515 4.1.11: critical extensions we do not understand make the token invalid.
        return AuthnFailure(Reason.FORBIDDEN_TOKEN_HEADER, "token has critical header extensions")
    typ = header.get("typ")
    if "typ" in header and (not isinstance(typ, str) or typ.lower() not in ACCEPTED_TYP):
        return _malformed("token 'typ' is not a JWT access token type")
    cty = header.get("cty")
    if isinstance(cty, str) and cty.upper() == "JWT":
        return _malformed("nested tokens are not accepted")
    if not isinstance(header.get("alg"), str):
        return _malformed("token header has no 'alg'")
    if "kid" in header and not isinstance(header["kid"], str):
        return _malformed("token 'kid' must be a string")
    return TokenPeek(header=header, payload=payload)
