"""The config files' schema: every section of the main config file and of the
envoyproxy/ratelimit YAML, as frozen pydantic models that reject unknown keys.

A leaf: it imports nothing of ours outside this package (only the standard library and
pydantic), so every layer may read settings without pulling in behaviour. Validators check
values only; what a setting does lives with the code that uses it.
"""

from __future__ import annotations

from authz_service.schema.base import (
    SHA256_DIGEST,
    Duration,
    FieldError,
    HeaderName,
    Sha256Hash,
    Strict,
    first_repeat,
    header_name,
    parse_duration,
)
from authz_service.schema.config import Config
from authz_service.schema.credentials import (
    DEFAULT_TOKEN_SOURCES,
    ApiKey,
    ApiKeySettings,
    AsymmetricAlgorithm,
    DpopSettings,
    JwksSettings,
    JwtProvider,
    MtlsSettings,
    ReplayProtection,
    RevocationSettings,
    TokenSource,
)
from authz_service.schema.hostnames import canonical_host_pattern, ipv6_literal
from authz_service.schema.http_check import (
    Endpoint,
    EnvoyHttpSettings,
    HttpCheckSettings,
    Integration,
    NginxSettings,
)
from authz_service.schema.introspection import IntrospectionCache, IntrospectionProvider
from authz_service.schema.listen_address import split_listen
from authz_service.schema.policy import (
    DEFAULT_HEADERS,
    DEFAULT_QUERY_PARAMETERS,
    IdentityHeaders,
    MethodOverrideSettings,
    PathMatch,
    Policy,
    PolicySelection,
    RequestMatch,
    Requirement,
    Rule,
    StepUp,
)
from authz_service.schema.quota_service import QuotaServiceSettings
from authz_service.schema.ratelimit import (
    BruteForceSettings,
    CheckQuota,
    CircuitBreakerSettings,
    QuotaDescriptor,
    QuotaEntry,
    QuotaSource,
    RateLimitSettings,
)
from authz_service.schema.ratelimit_rules import (
    UNIT_SECONDS,
    Algorithm,
    DescriptorSpec,
    DomainSpec,
    RateLimitSpec,
    ReplacesSpec,
    Text,
    Unit,
    UnitName,
)
from authz_service.schema.redis import RedisSettings, RedisTls
from authz_service.schema.secret_digest import bearer_matches, secret_digest
from authz_service.schema.server import (
    AdminSettings,
    ConnectionLimits,
    GrpcConnectionLimits,
    RequestLimits,
    ServerSettings,
    ServerTls,
)
from authz_service.schema.telemetry import (
    AuditSettings,
    MetricsSettings,
    TelemetrySettings,
    TracingSettings,
)

__all__ = [
    "DEFAULT_HEADERS",
    "DEFAULT_QUERY_PARAMETERS",
    "DEFAULT_TOKEN_SOURCES",
    "SHA256_DIGEST",
    "UNIT_SECONDS",
    "AdminSettings",
    "Algorithm",
    "ApiKey",
    "ApiKeySettings",
    "AsymmetricAlgorithm",
    "AuditSettings",
    "BruteForceSettings",
    "CheckQuota",
    "CircuitBreakerSettings",
    "Config",
    "ConnectionLimits",
    "DescriptorSpec",
    "DomainSpec",
    "DpopSettings",
    "Duration",
    "Endpoint",
    "EnvoyHttpSettings",
    "FieldError",
    "GrpcConnectionLimits",
    "HeaderName",
    "HttpCheckSettings",
    "IdentityHeaders",
    "Integration",
    "IntrospectionCache",
    "IntrospectionProvider",
    "JwksSettings",
    "JwtProvider",
    "MethodOverrideSettings",
    "MetricsSettings",
    "MtlsSettings",
    "NginxSettings",
    "PathMatch",
    "Policy",
    "PolicySelection",
    "QuotaDescriptor",
    "QuotaEntry",
    "QuotaServiceSettings",
    "QuotaSource",
    "RateLimitSettings",
    "RateLimitSpec",
    "RedisSettings",
    "RedisTls",
    "ReplacesSpec",
    "ReplayProtection",
    "RequestLimits",
    "RequestMatch",
    "Requirement",
    "RevocationSettings",
    "Rule",
    "ServerSettings",
    "ServerTls",
    "Sha256Hash",
    "StepUp",
    "Strict",
    "TelemetrySettings",
    "Text",
    "TokenSource",
    "TracingSettings",
    "Unit",
    "UnitName",
    "bearer_matches",
    "canonical_host_pattern",
    "first_repeat",
    "header_name",
    "ipv6_literal",
    "parse_duration",
    "secret_digest",
    "split_listen",
]
