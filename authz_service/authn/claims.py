"""Reading roles, scopes and other values out of verified claims, and the Identity they make."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from authz_service.decisions import AuthMethod, AuthnFailure, Identity, Reason
from authz_service.schema import IntrospectionProvider, JwtProvider

MAX_HEADER_VALUE = 1024


def claim_at(claims: Mapping[str, Any], dotted_path: str) -> Any:
    """The value at a dotted path ("realm_access.roles"); None when any step is missing.

    A claim whose own name contains dots (e.g. a namespaced URL) is found too: the longest
    literal key is tried before descending.
    """
    if dotted_path in claims:
        return claims[dotted_path]
    current: Any = claims
    parts = dotted_path.split(".")
    index = 0
    while index < len(parts):
        if not isinstance(current, Mapping):
            return None
        for end in range(len(parts), index, -1):
            key = ".".join(parts[index:end])
            if key in current:
                current = current[key]
                index = end
                break
        else:
            return None
    return current


def as_strings(value: Any) -> list[str]:
    """A claim as a list of strings: lists are kept, strings split on whitespace."""
    if value is None:
        return []
    if isinstance(value, str):
        return value.split()
    if isinstance(value, list | tuple):
        return [item for item in value if isinstance(item, str)]
    return []


def collect(claims: Mapping[str, Any], paths: Iterable[str]) -> frozenset[str]:
    values: set[str] = set()
    for path in paths:
        values.update(as_strings(claim_at(claims, path)))
    return frozenset(values)


def header_safe(value: Any) -> str:
    """A claim rendered as a header value: no control characters, bounded length."""
    if isinstance(value, list | tuple):
        text = ",".join(str(item) for item in value)
    elif isinstance(value, bool):
        text = "true" if value else "false"
    elif value is None:
        text = ""
    else:
        text = str(value)
    cleaned = "".join(ch for ch in text if ch >= " " and ch != "\x7f")
    return cleaned[:MAX_HEADER_VALUE]


def number(value: object) -> float | None:
    """A numeric claim (`iat`, `auth_time`) as a float; None for anything else, bools included."""
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _confirmation_member(claims: Mapping[str, object], member: str) -> str:
    """A token's `cnf` member (what it is bound to), or "" when it has none."""
    confirmation = claims.get("cnf")
    if not isinstance(confirmation, dict) or member not in confirmation:
        return ""
    value = confirmation[member]
    # A member that is no string still binds the token: no proof or certificate can match it.
    return value if isinstance(value, str) and value else "\0unusable"


def bound_jkt(claims: Mapping[str, object]) -> str:
    """The key a token is bound to by DPoP (`cnf.jkt`, RFC 9449 6.1), or ""."""
    return _confirmation_member(claims, "jkt")


def bound_x5t(claims: Mapping[str, object]) -> str:
    """The certificate a token is bound to (`cnf.x5t#S256`, RFC 8705 3.1), or ""."""
    return _confirmation_member(claims, "x5t#S256")


def identity_from_claims(
    provider: JwtProvider | IntrospectionProvider,
    claims: Mapping[str, Any],
    *,
    method: AuthMethod,
    expires_at: float | None,
    token_digest: str = "",
) -> Identity | AuthnFailure:
    """The caller a verified token (JWT) or an issuer's answer (introspection) names.

    The credential's own checks (signature, issuer, expiry) are the caller's; this reads the
    provider's claim mapping the same way for both.
    """
    subject = claim_at(claims, provider.subject_claim)
    if not isinstance(subject, str) or not subject:
        return AuthnFailure(Reason.MISSING_CLAIM, f"token lacks '{provider.subject_claim}'")
    tier = claim_at(claims, provider.tier_claim) if provider.tier_claim else None
    return Identity(
        principal=subject,
        method=method,
        issuer=provider.issuer,
        roles=collect(claims, provider.roles_claims),
        scopes=collect(claims, provider.scope_claims),
        tier=header_safe(tier) if tier is not None else "",
        claims={
            header: header_safe(claim_at(claims, path))
            for path, header in provider.claims_to_headers.items()
            if claim_at(claims, path) is not None
        },
        expires_at=expires_at,
        token_id=jti if isinstance(jti := claims.get("jti"), str) else "",
        token_digest=token_digest,
        issued_at=number(claims.get("iat")),
        acr=header_safe(acr) if isinstance(acr := claims.get("acr"), str) else "",
        auth_time=number(claims.get("auth_time")),
        bound_jkt=bound_jkt(claims),
        bound_x5t=bound_x5t(claims),
        verified_claims=claims,
    )
