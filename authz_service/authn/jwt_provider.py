"""Verifying a bearer token against one configured provider with PyJWT."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

import jwt

from authz_service.authn.claims import identity_from_claims
from authz_service.authn.jwks import JwksCache
from authz_service.authn.tokens import TokenPeek
from authz_service.decisions import AuthMethod, AuthnFailure, Identity, Reason
from authz_service.schema import JwtProvider

WallClock = Callable[[], float]

# What each PyJWT failure means to a client, most specific first.
_FAILURES: tuple[tuple[type[Exception], Reason, str], ...] = (
    (jwt.ExpiredSignatureError, Reason.TOKEN_EXPIRED, "token has expired"),
    (jwt.ImmatureSignatureError, Reason.TOKEN_NOT_YET_VALID, "token is not valid yet"),
    (jwt.InvalidIssuedAtError, Reason.TOKEN_NOT_YET_VALID, "token issued in the future"),
    (jwt.InvalidAudienceError, Reason.WRONG_AUDIENCE, "token audience is not accepted"),
    (jwt.InvalidIssuerError, Reason.WRONG_ISSUER, "token issuer is not accepted"),
    (jwt.MissingRequiredClaimError, Reason.MISSING_CLAIM, "token lacks a required claim"),
    (jwt.InvalidSignatureError, Reason.BAD_SIGNATURE, "token signature does not verify"),
    (jwt.InvalidAlgorithmError, Reason.UNSUPPORTED_ALGORITHM, "token algorithm not accepted"),
    (jwt.InvalidKeyError, Reason.UNSUPPORTED_ALGORITHM, "token algorithm does not fit the key"),
    (jwt.DecodeError, Reason.MALFORMED_TOKEN, "token cannot be decoded"),
)


def _failure_for(error: Exception) -> AuthnFailure:
    for error_type, reason, message in _FAILURES:
        if isinstance(error, error_type):
            return AuthnFailure(reason, message)
    return AuthnFailure(Reason.INVALID_TOKEN, "token is not valid")


class JwtProviderVerifier:
    def __init__(self, provider: JwtProvider, jwks: JwksCache, wall_clock: WallClock = time.time):
        self.provider = provider
        self.jwks = jwks
        self._wall_clock = wall_clock
        self._algorithms = frozenset(provider.algorithms)
        self._require = ["exp", "iss"] + (["iat"] if provider.max_lifetime_s else [])

    async def verify(self, token: str, peek: TokenPeek) -> Identity | AuthnFailure:
        alg = peek.alg
        if alg not in self._algorithms:
            # Covers "none", HS* (the public-key-as-HMAC-secret attack) and anything unpinned.
            return AuthnFailure(
                Reason.UNSUPPORTED_ALGORITHM,
                f"algorithm {alg!r} is not accepted for this issuer",
            )
        key = await self.jwks.get_key(peek.kid)
        if key is None and not peek.kid:
            key = self._only_key_for(alg)
        if key is None:
            return AuthnFailure(Reason.UNKNOWN_KEY, "token signing key is not in the issuer's JWKS")
        jwk_alg = getattr(key, "_jwk_data", {}).get("alg")
        if jwk_alg is not None and jwk_alg != alg:
            return AuthnFailure(
                Reason.UNSUPPORTED_ALGORITHM, "token algorithm does not fit the key"
            )
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key=key.key,
                algorithms=[alg],
                audience=self.provider.audiences,
                issuer=self.provider.issuer,
                leeway=self.provider.leeway_s,
                options={"require": self._require, "verify_iat": True},
            )
        except jwt.PyJWTError as error:
            return _failure_for(error)
        except (ValueError, TypeError, OverflowError):
            return AuthnFailure(Reason.MALFORMED_TOKEN, "token claims are malformed")
        try:
            return self._identity(claims)
        except (ValueError, TypeError, OverflowError):
            # Signed but absurd: iat as a string under a lifetime cap, exp beyond a float.
            return AuthnFailure(Reason.MALFORMED_TOKEN, "token claims are malformed")

    def _only_key_for(self, alg: str) -> Any:
        # Tokens without `kid` are accepted only when the JWKS leaves no choice.
        candidates = [key for key in self.jwks.keys.values() if key.algorithm_name == alg]
        return candidates[0] if len(candidates) == 1 else None

    def _identity(self, claims: Mapping[str, Any]) -> Identity | AuthnFailure:
        provider = self.provider
        exp = claims["exp"]
        if not isinstance(exp, int | float) or isinstance(exp, bool):
            return AuthnFailure(Reason.MALFORMED_TOKEN, "token 'exp' is not a number")
        lifetime_cap = provider.max_lifetime_s
        if lifetime_cap is not None and exp - claims["iat"] > lifetime_cap:
            return AuthnFailure(
                Reason.TOKEN_LIFETIME_TOO_LONG, f"token lifetime exceeds {int(lifetime_cap)}s"
            )
        return identity_from_claims(provider, claims, method=AuthMethod.JWT, expires_at=float(exp))
