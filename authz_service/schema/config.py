"""The root of the config file: every section, and the checks that span sections."""

from __future__ import annotations

from pydantic import Field, model_validator

from authz_service.schema.base import FieldError, Strict, first_repeat
from authz_service.schema.credentials import (
    ApiKeySettings,
    JwtProvider,
    MtlsSettings,
    RevocationSettings,
)
from authz_service.schema.http_check import HttpCheckSettings
from authz_service.schema.introspection import IntrospectionProvider
from authz_service.schema.policy import (
    IdentityHeaders,
    MethodOverrideSettings,
    Policy,
    PolicySelection,
)
from authz_service.schema.quota_service import QuotaServiceSettings, check_identity_headers
from authz_service.schema.ratelimit import CheckQuota, RateLimitSettings
from authz_service.schema.server import AdminSettings, RequestLimits, ServerSettings
from authz_service.schema.telemetry import TelemetrySettings


class Config(Strict):
    server: ServerSettings = ServerSettings()
    jwt_providers: list[JwtProvider] = Field(default_factory=list)
    # Opaque (non-JWT) tokens, checked at the issuer's introspection endpoint (RFC 7662).
    introspection_providers: list[IntrospectionProvider] = Field(default_factory=list)
    api_keys: ApiKeySettings = ApiKeySettings()
    mtls: MtlsSettings = MtlsSettings()
    identity_headers: IdentityHeaders = IdentityHeaders()
    # X-HTTP-Method-Override and its cousins: removed before the upstream, and decided on.
    method_overrides: MethodOverrideSettings = MethodOverrideSettings()
    policy_selection: PolicySelection = PolicySelection()
    policies: dict[str, Policy] = Field(min_length=1)
    # Deny bodies for 401/403 carry this realm in WWW-Authenticate.
    realm: str = "authz-service"
    telemetry: TelemetrySettings = TelemetrySettings()
    rate_limit: RateLimitSettings | None = None
    check_quota: CheckQuota | None = None
    # Envoy's Rate Limit Quota Service (RLQS): buckets, shares across Envoys.
    quota_service: QuotaServiceSettings | None = None
    revocation: RevocationSettings = RevocationSettings()
    admin: AdminSettings = AdminSettings()
    # The HTTP check endpoint (NGINX auth_request, Traefik forwardAuth, Envoy http_service).
    http_check: HttpCheckSettings | None = None
    # Verified tokens kept (until their expiry) so repeated tokens skip signature checks.
    token_cache_max_entries: int = Field(default=10_000, ge=0)
    # Header count and size of a check request, on both transports (431 request_too_large).
    request_limits: RequestLimits = RequestLimits()

    @model_validator(mode="after")
    def _consistent(self) -> Config:
        repeat = first_repeat([provider.name for provider in self.jwt_providers])
        if repeat is not None:
            raise FieldError("jwt provider names must be unique", ("jwt_providers", repeat, "name"))
        repeat = first_repeat([provider.issuer for provider in self.jwt_providers])
        if repeat is not None:
            raise FieldError(
                "two jwt providers have the same issuer", ("jwt_providers", repeat, "issuer")
            )
        repeat = first_repeat([provider.name for provider in self.introspection_providers])
        if repeat is not None:
            raise FieldError(
                "introspection provider names must be unique",
                ("introspection_providers", repeat, "name"),
            )
        for index, provider in enumerate(self.introspection_providers):
            unknown = [name for name in provider.policies if name not in self.policies]
            if unknown:
                raise FieldError(
                    f"no policy {unknown[0]!r} (known: {', '.join(sorted(self.policies))})",
                    ("introspection_providers", index, "policies"),
                )
        if self.policy_selection.default not in self.policies:
            raise FieldError(
                f"{self.policy_selection.default!r} is not one of the policies: "
                f"{', '.join(sorted(self.policies))}",
                ("policy_selection", "default"),
            )
        for name, policy in self.policies.items():
            target = policy.shadow_of
            if target is None:
                continue
            target_policy = self.policies.get(target)
            if target_policy is None or target_policy.shadow_of is not None or target == name:
                raise FieldError(
                    f"shadow_of names {target!r}, not an enforced policy of this config",
                    ("policies", name, "shadow_of"),
                )
            if any(rule.mode == "shadow" for rule in target_policy.rules):
                raise FieldError(
                    f"policy {target!r} has shadow rules already: shadow it one way only",
                    ("policies", name, "shadow_of"),
                )
        if self.check_quota is not None and self.rate_limit is None:
            raise FieldError(
                "check_quota needs a rate_limit section (the limits and their store)",
                ("check_quota",),
            )
        if self.quota_service is not None:
            if self.rate_limit is None:
                raise FieldError("quota_service needs a rate_limit section", ("quota_service",))
            check_identity_headers(self.quota_service, self.identity_headers)
        self._check_admin()
        return self

    def _check_admin(self) -> None:
        admin, tls = self.admin, self.server.tls
        if admin.tls and tls is None:
            raise FieldError("admin.tls uses server.tls's certificate: set server.tls", ("admin",))
        mutual_tls = admin.tls and tls is not None and tls.client_ca_file is not None
        if admin.exposed and admin.token_hash is None and not mutual_tls:
            raise FieldError(
                f"admin.listen {admin.listen!r} is not loopback: set admin.token_hash, or "
                "admin.tls with server.tls.client_ca_file (mutual TLS), so that admin calls "
                "are authenticated",
                ("admin", "listen"),
            )
