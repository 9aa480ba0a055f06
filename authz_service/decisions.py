"""Core value types shared by the decision core and the transports.

These know nothing of protobuf, gRPC, JWT libraries or storage: servicers translate Envoy
messages into `RequestAttributes`, the core answers with a `Decision`.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class RequestAttributes:
    """The parts of an HTTP request that policy can look at.

    Header names are lower-case (HTTP/2 and Envoy already normalise them).
    """

    method: str
    host: str
    path: str
    headers: Mapping[str, str] = field(default_factory=dict)
    source_address: str = ""
    peer_principal: str = ""
    context: Mapping[str, str] = field(default_factory=dict)
    request_id: str = ""
    # x5t#S256 of the client's mTLS certificate (authn/cert_binding.py says where from), or "".
    client_cert_thumbprint: str = ""

    @property
    def path_without_query(self) -> str:
        cut = len(self.path)
        for sep in ("?", "#"):
            index = self.path.find(sep)
            if index != -1:
                cut = min(cut, index)
        return self.path[:cut]


class AuthMethod(enum.StrEnum):
    JWT = "jwt"
    API_KEY = "api_key"
    MTLS = "mtls"
    INTROSPECTION = "introspection"  # an opaque token the issuer vouched for (RFC 7662)


@dataclass(frozen=True, slots=True)
class Identity:
    """Who the caller is, once a credential has been verified."""

    principal: str
    method: AuthMethod
    issuer: str = ""
    roles: frozenset[str] = frozenset()
    scopes: frozenset[str] = frozenset()
    tier: str = ""
    claims: Mapping[str, str] = field(default_factory=dict)
    expires_at: float | None = None
    token_id: str = ""  # the JWT's `jti`, for revocation
    # "sha256:<hex>" of an opaque token (never the token): revocable by it when the issuer's
    # introspection answer names no `jti`.
    token_digest: str = ""
    issued_at: float | None = None
    acr: str = ""  # how the user authenticated (RFC 9470 step-up rules read it)
    auth_time: float | None = None
    bound_x5t: str = ""  # the token's `cnf.x5t#S256` (RFC 8705): the client cert it needs
    bound_jkt: str = ""  # the token's `cnf.jkt` (RFC 9449): a DPoP proof by that key is needed
    # The verified token's whole payload, for `when:` conditions (authz/conditions.py); never
    # put in a header or a log line as a whole.
    verified_claims: Mapping[str, Any] = field(
        default_factory=dict, repr=False, compare=False, hash=False
    )


class Outcome(enum.StrEnum):
    ALLOW = "allow"
    UNAUTHENTICATED = "unauthenticated"  # 401
    FORBIDDEN = "forbidden"  # 403
    RATE_LIMITED = "rate_limited"  # 429
    UNAVAILABLE = "unavailable"  # 503: the service could not decide (fail closed)


class Reason(enum.StrEnum):
    """Stable reason codes: they appear in response bodies, headers, logs and metric labels."""

    ALLOWED = "allowed"
    ANONYMOUS_ALLOWED = "anonymous_allowed"
    MISSING_CREDENTIALS = "missing_credentials"
    MALFORMED_TOKEN = "malformed_token"
    TOKEN_TOO_LARGE = "token_too_large"
    UNSUPPORTED_ALGORITHM = "unsupported_algorithm"
    FORBIDDEN_TOKEN_HEADER = "forbidden_token_header"
    UNKNOWN_ISSUER = "unknown_issuer"
    UNKNOWN_KEY = "unknown_key"
    BAD_SIGNATURE = "bad_signature"
    TOKEN_EXPIRED = "token_expired"
    TOKEN_NOT_YET_VALID = "token_not_yet_valid"
    TOKEN_LIFETIME_TOO_LONG = "token_lifetime_too_long"
    WRONG_AUDIENCE = "wrong_audience"
    WRONG_ISSUER = "wrong_issuer"
    MISSING_CLAIM = "missing_claim"
    INVALID_TOKEN = "invalid_token"
    TOKEN_REVOKED = "token_revoked"
    TOKEN_REPLAYED = "token_replayed"
    INVALID_API_KEY = "invalid_api_key"
    AMBIGUOUS_CREDENTIALS = "ambiguous_credentials"
    AUTHENTICATION_REQUIRED = "authentication_required"
    MISSING_ROLE = "missing_role"
    MISSING_SCOPE = "missing_scope"
    PRINCIPAL_NOT_ALLOWED = "principal_not_allowed"
    DENIED_BY_RULE = "denied_by_rule"
    NO_MATCHING_RULE = "no_matching_rule"
    UNKNOWN_POLICY = "unknown_policy"
    RATE_LIMITED = "rate_limited"
    LOCKED_OUT = "locked_out"
    RATE_LIMIT_UNAVAILABLE = "rate_limit_unavailable"
    INTERNAL_ERROR = "internal_error"
    BAD_REQUEST = "bad_request"
    OVERLOADED = "overloaded"
    AUDIT_UNAVAILABLE = "audit_unavailable"
    REQUEST_TOO_LARGE = "request_too_large"  # 431: too many or too large headers
    INSUFFICIENT_USER_AUTHENTICATION = "insufficient_user_authentication"  # RFC 9470 step-up
    CERTIFICATE_MISMATCH = "certificate_mismatch"  # RFC 8705: not the certificate bound to
    DPOP_PROOF_MISSING = "dpop_proof_missing"  # a DPoP-bound token without a proof
    INVALID_DPOP_PROOF = "invalid_dpop_proof"  # the proof does not verify (RFC 9449)
    DPOP_PROOF_REPLAYED = "dpop_proof_replayed"  # the proof's jti was seen before
    USE_DPOP_NONCE = "use_dpop_nonce"  # the proof lacks the server's current nonce (RFC 9449 8)
    TOKEN_INACTIVE = "token_inactive"  # the issuer's introspection says not active (RFC 7662)
    # The introspection endpoint did not answer usably: 503, the token may still be good.
    INTROSPECTION_UNAVAILABLE = "introspection_unavailable"


_HTTP_STATUS = {
    Outcome.ALLOW: 200,
    Outcome.UNAUTHENTICATED: 401,
    Outcome.FORBIDDEN: 403,
    Outcome.RATE_LIMITED: 429,
    Outcome.UNAVAILABLE: 503,
}
# Reasons whose HTTP status says more than their outcome's (RFC 6585: header fields too large).
_HTTP_STATUS_BY_REASON = {Reason.REQUEST_TOO_LARGE: 431}


def http_status(outcome: Outcome, reason: Reason) -> int:
    """The HTTP status a decision is answered with, as the answer and the audit line say."""
    return _HTTP_STATUS_BY_REASON.get(reason) or _HTTP_STATUS[outcome]


@dataclass(frozen=True, slots=True)
class AuthnFailure:
    """A credential was presented (or required) and did not verify."""

    reason: Reason
    message: str
    # RFC 6750 error code for WWW-Authenticate: invalid_request | invalid_token
    bearer_error: str = "invalid_token"


@dataclass(frozen=True, slots=True)
class ShadowVerdict:
    """What the shadow rules or shadow policy would have decided; recorded, never enforced."""

    outcome: Outcome
    reason: Reason
    rule: str
    policy: str

    def agrees_with(self, decision: Decision) -> bool:
        return self.outcome is decision.outcome and self.reason is decision.reason


@dataclass(frozen=True, slots=True)
class Decision:
    outcome: Outcome
    reason: Reason
    message: str = ""
    rule: str = ""
    policy: str = ""
    identity: Identity | None = None
    bearer_error: str = ""
    # Headers the deny response carries besides the standard ones (e.g. rate-limit headers).
    extra_headers: Mapping[str, str] = field(default_factory=dict)
    # A deny body that must match another path's exactly (the 429 of the RateLimitService).
    body: str = ""
    # Parameters the WWW-Authenticate challenge adds (step-up: acr_values, max_age).
    challenge: Mapping[str, str] = field(default_factory=dict)
    # Set when the policy has shadow rules or a shadow policy (schema/policy.py).
    shadow: ShadowVerdict | None = None

    @property
    def allowed(self) -> bool:
        return self.outcome is Outcome.ALLOW
