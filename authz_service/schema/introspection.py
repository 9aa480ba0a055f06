"""Opaque tokens checked at their issuer's introspection endpoint (RFC 7662)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from authz_service.schema.base import HeaderName, Strict, header_name
from authz_service.schema.credentials import DEFAULT_TOKEN_SOURCES, TokenSource


class IntrospectionCache(Strict):
    """How long an introspection answer is reused. An active answer is kept until the token's
    `exp`, never longer than `active_max_s`: that is how long a token revoked at the issuer
    (RFC 7009) can still pass here. A token revoked through this service is refused at once."""

    max_entries: int = Field(default=10_000, ge=0)
    # 0: every request is introspected (no staleness, one call per request).
    active_max_s: float = Field(default=30.0, ge=0)
    # Inactive (or unknown) tokens are answered from the cache this long: short, so that a
    # token just issued is not refused for long, long enough that a flood of bad tokens
    # repeating itself does not reach the issuer.
    inactive_s: float = Field(default=5.0, ge=0, le=300)


class IntrospectionProvider(Strict):
    """`introspection_providers[]`. A token that is not a JWT, found in one of this provider's
    token sources, is introspected here. Example (YAML):

    introspection_providers:
      - name: corp-opaque
        issuer: https://login.example.com
        introspection_endpoint: https://login.example.com/token/introspection
        client_id: authz-gateway
        client_secret_file: /run/secrets/introspection
        client_auth: client_secret_basic
        audiences: [orders-api]
    """

    name: str = Field(min_length=1)
    # The identity's issuer; an answer with another `iss` is refused.
    issuer: str = Field(min_length=1)
    introspection_endpoint: str
    client_id: str = Field(min_length=1)
    # The client secret: from a file (a Kubernetes Secret) or an environment variable.
    client_secret_file: Path | None = None
    client_secret_env: str | None = None
    client_auth: Literal["client_secret_basic", "client_secret_post"] = "client_secret_basic"
    # Sent as `token_type_hint` (RFC 7662 2.1); null sends none.
    token_type_hint: str | None = "access_token"
    # An answer with `aud` must name one of these; empty accepts any audience.
    audiences: list[str] = Field(default_factory=list)
    connect_timeout_s: float = Field(default=1.0, gt=0, le=30)
    # The whole call, waiting for a free slot included; past it the request is answered 503.
    timeout_s: float = Field(default=2.0, gt=0, le=60)
    # Calls in flight to the endpoint at once; more requests wait for a slot (within timeout_s).
    max_concurrent: int = Field(default=32, gt=0, le=1024)
    max_response_bytes: int = Field(default=100_000, gt=0)
    max_token_bytes: int = Field(default=8192, gt=0)
    cache: IntrospectionCache = IntrospectionCache()
    token_sources: list[TokenSource] = Field(default_factory=lambda: list(DEFAULT_TOKEN_SOURCES))
    # Only for requests decided under these policies (policy_selection picks one per listener
    # or route, e.g. "public" / "internal"); empty: under every policy.
    policies: list[str] = Field(default_factory=list)
    # Claim mapping as for JWT providers: dotted paths into the introspection answer.
    roles_claims: list[str] = Field(default_factory=lambda: ["roles"])
    scope_claims: list[str] = Field(default_factory=lambda: ["scope"])
    subject_claim: str = "sub"
    tier_claim: str | None = None
    claims_to_headers: dict[str, HeaderName] = Field(default_factory=dict)

    @field_validator("claims_to_headers")
    @classmethod
    def _lower_headers(cls, value: dict[str, str]) -> dict[str, str]:
        return {claim: header_name(header) for claim, header in value.items()}

    @field_validator("introspection_endpoint")
    @classmethod
    def _http_uri(cls, value: str) -> str:
        if not value.startswith(("https://", "http://")):
            raise ValueError("introspection_endpoint must be an http(s) URL")
        return value

    @model_validator(mode="after")
    def _one_secret_source(self) -> IntrospectionProvider:
        if (self.client_secret_file is None) == (self.client_secret_env is None):
            raise ValueError("give exactly one of client_secret_file, client_secret_env")
        return self

    def resolved_secret(self) -> str:
        """The client secret, read now: the loader checks it at load, and a reload after a
        rotation gives the provider a new client with the new secret."""
        if self.client_secret_file is not None:
            return self.client_secret_file.read_text().strip()
        assert self.client_secret_env is not None
        value = os.environ.get(self.client_secret_env)
        if value is None:
            raise ValueError(f"environment variable {self.client_secret_env} is not set")
        return value
