"""How callers prove who they are: token sources, JWT providers and their JWKS, one-time
tokens (replay protection), API keys, mTLS peers, and where revoked tokens are recorded."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from authz_service.schema.base import SHA256_DIGEST, HeaderName, Strict, header_name
from authz_service.schema.redis import RedisSettings

MIN_NONCE_SECRET_BYTES = 16

# Asymmetric algorithms only: a shared-secret HS* key in a gateway config is one more secret to
# leak, and allowing HS* next to RS* is how the "HS256 signed with the public key" attack works.
AsymmetricAlgorithm = Literal[
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"
]


class TokenSource(Strict):
    """Where a token is read from: exactly one of header or cookie."""

    header: HeaderName | None = None
    prefix: str = ""
    cookie: str | None = None

    @field_validator("header")
    @classmethod
    def _lower(cls, value: str | None) -> str | None:
        return None if value is None else header_name(value)

    @model_validator(mode="after")
    def _exactly_one(self) -> TokenSource:
        if (self.header is None) == (self.cookie is None):
            raise ValueError("a token source names exactly one of 'header' or 'cookie'")
        if self.cookie is not None and self.prefix:
            raise ValueError("'prefix' applies to headers only")
        return self


DEFAULT_TOKEN_SOURCES = (TokenSource(header="authorization", prefix="Bearer "),)


class JwksSettings(Strict):
    refresh_interval_s: float = Field(default=300.0, gt=0)
    # Unknown `kid`: at most one refetch per this interval, whatever the request rate.
    min_refetch_interval_s: float = Field(default=10.0, ge=0)
    fetch_timeout_s: float = Field(default=2.0, gt=0)
    max_response_bytes: int = Field(default=1_000_000, gt=0)


class ReplayProtection(Strict):
    """`jwt_providers[].replay_protection`. Example (YAML):

    replay_protection: {enabled: true, require_jti: true, failure_mode: unavailable}
    """

    enabled: bool = False
    # A token without a `jti` cannot be tracked: refuse it (default) or let it through.
    require_jti: bool = True
    # Store down: "unavailable" answers 503 (fail closed); "allow" accepts the token untracked.
    failure_mode: Literal["unavailable", "allow"] = "unavailable"


class DpopSettings(Strict):
    """`jwt_providers[].dpop` (RFC 9449). A token bound to a key (`cnf.jkt`) is always checked
    for a proof; `required: true` also refuses this provider's unbound tokens. Example (YAML):

    dpop: {required: true, algorithms: [ES256], max_age_s: 60}
    dpop: {nonce: required, nonce_lifetime_s: 300, nonce_secret_file: /run/secrets/dpop-nonce}
    """

    required: bool = False
    algorithms: list[AsymmetricAlgorithm] = Field(
        default=["ES256", "RS256", "PS256", "EdDSA"], min_length=1
    )
    # A proof's `iat` may be this old (plus leeway_s), or leeway_s in the future.
    max_age_s: float = Field(default=60.0, gt=0, le=3600)
    leeway_s: float = Field(default=5.0, ge=0, le=300)
    # Replay store down: "unavailable" answers 503 (fail closed); "allow" accepts untracked.
    failure_mode: Literal["unavailable", "allow"] = "unavailable"
    # Server nonces (RFC 9449 8): "required" answers a proof without a current nonce 401
    # use_dpop_nonce with a DPoP-Nonce header. Nonces are an HMAC of a time window under a
    # secret every replica shares (from a file or an environment variable, never the config):
    # each is accepted for nonce_lifetime_s to twice that, on every replica, with nothing stored.
    nonce: Literal["off", "required"] = "off"
    nonce_lifetime_s: float = Field(default=300.0, ge=1, le=86400)
    nonce_secret_file: Path | None = None
    nonce_secret_env: str | None = None

    @model_validator(mode="after")
    def _nonce_secret(self) -> DpopSettings:
        sources = (self.nonce_secret_file is not None) + (self.nonce_secret_env is not None)
        if self.nonce == "required" and sources != 1:
            raise ValueError(
                "dpop.nonce: required needs exactly one of nonce_secret_file or nonce_secret_env"
            )
        if self.nonce == "off" and sources:
            raise ValueError("nonce_secret_file/nonce_secret_env apply with dpop.nonce: required")
        return self

    def resolved_nonce_secret(self) -> bytes:
        """The nonce key from its file or environment variable (at least 16 bytes)."""
        if self.nonce_secret_file is not None:
            secret = self.nonce_secret_file.read_bytes().strip()
        elif self.nonce_secret_env is not None:
            value = os.environ.get(self.nonce_secret_env)
            if value is None:
                raise ValueError(f"environment variable {self.nonce_secret_env} is not set")
            secret = value.strip().encode()
        else:
            raise ValueError("no DPoP nonce secret configured")
        if len(secret) < MIN_NONCE_SECRET_BYTES:
            raise ValueError(
                f"the DPoP nonce secret is shorter than {MIN_NONCE_SECRET_BYTES} bytes"
            )
        return secret


class JwtProvider(Strict):
    name: str = Field(min_length=1)
    issuer: str = Field(min_length=1)
    audiences: list[str] = Field(min_length=1)
    # Without jwks_uri the keys are found through OIDC discovery from the issuer.
    jwks_uri: str | None = None
    algorithms: list[AsymmetricAlgorithm] = Field(default=["RS256"], min_length=1)
    leeway_s: float = Field(default=30.0, ge=0, le=600)
    max_lifetime_s: float | None = Field(default=None, gt=0)
    max_token_bytes: int = Field(default=8192, gt=0)
    token_sources: list[TokenSource] = Field(default_factory=lambda: list(DEFAULT_TOKEN_SOURCES))
    # Dotted claim paths, e.g. "realm_access.roles"; values may be lists or space-separated.
    roles_claims: list[str] = Field(default_factory=lambda: ["roles"])
    scope_claims: list[str] = Field(default_factory=lambda: ["scope", "scp"])
    subject_claim: str = "sub"
    tier_claim: str | None = None
    # Extra claims copied to upstream headers: claim path -> header name.
    claims_to_headers: dict[str, HeaderName] = Field(default_factory=dict)
    jwks: JwksSettings = JwksSettings()
    # One-time tokens: a second use of a `jti` is refused until the token expires.
    replay_protection: ReplayProtection = ReplayProtection()
    # Sender-constrained tokens: DPoP proofs (RFC 9449).
    dpop: DpopSettings = DpopSettings()

    @field_validator("claims_to_headers")
    @classmethod
    def _lower_headers(cls, value: dict[str, str]) -> dict[str, str]:
        return {claim: header_name(header) for claim, header in value.items()}

    @field_validator("jwks_uri")
    @classmethod
    def _http_uri(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("https://", "http://")):
            raise ValueError("jwks_uri must be an http(s) URL")
        return value


class ApiKey(Strict):
    name: str = Field(min_length=1)
    # The key is stored as "sha256:<hex>" of its value, never in clear.
    hash: str
    principal: str = Field(min_length=1)
    roles: list[str] = Field(default_factory=list)
    scopes: list[str] = Field(default_factory=list)
    tier: str = ""

    @field_validator("hash")
    @classmethod
    def _hashed(cls, value: str) -> str:
        if not SHA256_DIGEST.match(value):
            raise ValueError(
                "must be 'sha256:' followed by 64 lower-case hex digits "
                "(run `authz-service hash-key` to compute it); keys are never stored in clear"
            )
        return value


class ApiKeySettings(Strict):
    header: HeaderName = "x-api-key"
    keys: list[ApiKey] = Field(default_factory=list)

    @field_validator("header")
    @classmethod
    def _lower(cls, value: str) -> str:
        return header_name(value)

    @model_validator(mode="after")
    def _unique(self) -> ApiKeySettings:
        seen: set[str] = set()
        for key in self.keys:
            if key.hash in seen:
                raise ValueError(f"API key {key.name!r} has the same hash as another key")
            seen.add(key.hash)
        return self


class MtlsSettings(Strict):
    """Trust the peer identity Envoy reports (URI SAN / SPIFFE ID of the client certificate)."""

    # When no token or API key is presented, the peer principal becomes the identity.
    authenticate_peers: bool = False
    # Globs of peer principals accepted as identities, e.g. "spiffe://prod.example/ns/*/sa/*".
    trusted_principals: list[str] = Field(default_factory=lambda: ["spiffe://*"])
    roles: dict[str, list[str]] = Field(default_factory=dict)


class RevocationSettings(Strict):
    """Where revoked tokens are recorded; redis shares them across replicas."""

    store: Literal["memory", "redis"] = "memory"
    # Revocation writes are rare and not on the request path: a roomier timeout than quotas.
    redis: RedisSettings = RedisSettings(key_prefix="authz:revoked:", timeout_ms=1000)
    # Full re-read of the revocation set (safety net for missed pub/sub messages).
    sync_interval_s: float = Field(default=30.0, gt=0)
    # Subject revocations and jti revocations without an expiry are kept this long.
    max_token_lifetime_s: float = Field(default=86_400.0, gt=0)
