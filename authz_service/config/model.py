"""The configuration file's schema: typed, validated, unknown keys rejected.

One YAML file describes the server, how callers authenticate (JWT providers, API keys, mTLS
peers), the headers we hand to the upstream, and the RBAC policies.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    Field,
    field_validator,
    model_validator,
)

from authz_service.authn.replay import ReplayProtection
from authz_service.authz.hosts import canonical_host_pattern
from authz_service.authz.method_overrides import MethodOverrideSettings
from authz_service.config.strict import Strict, header_name
from authz_service.connection_limits import ConnectionLimits, GrpcConnectionLimits
from authz_service.http.settings import HttpCheckSettings
from authz_service.ratelimit.settings import RateLimitSettings, RedisSettings
from authz_service.request_limits import RequestLimits

# Asymmetric algorithms only: a shared-secret HS* key in a gateway config is one more secret to
# leak, and allowing HS* next to RS* is how the "HS256 signed with the public key" attack works.
AsymmetricAlgorithm = Literal[
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"
]

_SHA256_HEX = re.compile(r"^sha256:[0-9a-f]{64}$")


class FieldError(ValueError):
    """A check across fields that one field fails: `loc` (relative to the model) names it,
    so that the loader can point at that field's line rather than at the whole model."""

    def __init__(self, message: str, loc: tuple[str | int, ...]):
        super().__init__(message)
        self.loc = loc


def _first_repeat(values: list[str]) -> int | None:
    seen: set[str] = set()
    for index, value in enumerate(values):
        if value in seen:
            return index
        seen.add(value)
    return None


HeaderName = Annotated[str, Field(min_length=1)]


def _sha256_hash(value: str) -> str:
    if not _SHA256_HEX.match(value):
        raise ValueError("must be 'sha256:' followed by 64 lower-case hex digits")
    return value


# A secret's digest as configs hold it ("sha256:<hex>", from `authz-service hash-key`).
Sha256Hash = Annotated[str, AfterValidator(_sha256_hash)]


class ServerTls(Strict):
    """TLS for the gRPC port; with `client_ca_file`, mutual TLS (Envoy presents a cert).

    Certificate files are re-read when they change (checked at each new connection), so a
    rotated certificate (cert-manager, SPIRE) is served without a restart.
    """

    cert_file: Path
    key_file: Path
    client_ca_file: Path | None = None
    # Globs over the client certificate's SANs (URI SAN / SPIFFE ID or DNS name); empty:
    # any certificate the CA signed.
    allowed_client_sans: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _sans_need_mtls(self) -> ServerTls:
        if self.allowed_client_sans and self.client_ca_file is None:
            raise ValueError("allowed_client_sans needs client_ca_file (mutual TLS)")
        return self


class ServerSettings(Strict):
    listen: str = "127.0.0.1:9001"
    grace_period_s: float = Field(default=5.0, ge=0)
    # On SIGTERM: keep answering this long after health turns NOT_SERVING, so that health
    # checkers (Envoy's, Kubernetes readiness) steer traffic away before the port closes.
    drain_delay_s: float = Field(default=0.0, ge=0, le=60)
    # Watch the config file and reload on change (SIGHUP always reloads).
    watch_config: bool = True
    # Beyond this many RPCs in flight, new ones are refused at once with RESOURCE_EXHAUSTED
    # (Envoy's ext_authz then answers status_on_error, fail closed) instead of queueing.
    # At ~0.5 ms of CPU per Check, 256 waiting calls are ~130 ms of work on one core: beyond
    # that, shedding beats queueing. None removes the bound (not advised).
    max_concurrent_rpcs: int | None = Field(default=256, ge=1)
    # gRPC's own default is 4 MiB; a CheckRequest within request_limits is far smaller (add
    # Envoy's with_request_body.max_request_bytes if it sends bodies).
    max_receive_message_bytes: int = Field(default=512 * 1024, ge=16 * 1024, le=64 * 1024 * 1024)
    connections: GrpcConnectionLimits = GrpcConnectionLimits()
    tls: ServerTls | None = None


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
        if not _SHA256_HEX.match(value):
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


class IdentityHeaders(Strict):
    """Headers set for the upstream on allow (overwriting), and stripped from client requests."""

    subject: HeaderName | None = "x-user-id"
    roles: HeaderName | None = "x-user-roles"
    scopes: HeaderName | None = None
    tier: HeaderName | None = "x-user-tier"
    auth_method: HeaderName | None = "x-auth-method"
    issuer: HeaderName | None = None
    # Remove the credentials (Authorization, API key header, token cookies cut out of the
    # Cookie header) before the upstream sees them.
    strip_credentials: bool = False
    # Further headers no client may send (always removed from the request on allow).
    always_remove: list[HeaderName] = Field(default_factory=list)

    @field_validator("subject", "roles", "scopes", "tier", "auth_method", "issuer", mode="after")
    @classmethod
    def _lower(cls, value: str | None) -> str | None:
        return None if value is None else header_name(value)

    @field_validator("always_remove")
    @classmethod
    def _lower_all(cls, value: list[str]) -> list[str]:
        return [header_name(item) for item in value]


class RevocationSettings(Strict):
    """Where revoked tokens are recorded; redis shares them across replicas."""

    store: Literal["memory", "redis"] = "memory"
    # Revocation writes are rare and not on the request path: a roomier timeout than quotas.
    redis: RedisSettings = RedisSettings(key_prefix="authz:revoked:", timeout_ms=1000)
    # Full re-read of the revocation set (safety net for missed pub/sub messages).
    sync_interval_s: float = Field(default=30.0, gt=0)
    # Subject revocations and jti revocations without an expiry are kept this long.
    max_token_lifetime_s: float = Field(default=86_400.0, gt=0)


class AdminSettings(Strict):
    """The admin gRPC API (explain, reload, status, revoke, quotas) on its own port."""

    # None disables it. Loopback by default; any other address requires a token or mTLS.
    listen: str | None = "127.0.0.1:9002"
    # "sha256:<hex>" of the admin bearer token (`authz-service hash-key`).
    token_hash: Sha256Hash | None = None
    # Serve it with server.tls's certificate (so an exposed token is never sent in clear);
    # with server.tls.client_ca_file, callers must present a certificate that CA signed.
    tls: bool = False
    connections: GrpcConnectionLimits = GrpcConnectionLimits(max_connections=16, max_age_s=None)

    @property
    def exposed(self) -> bool:
        if self.listen is None:
            return False
        return self.listen.rpartition(":")[0].strip("[]") not in {"127.0.0.1", "localhost", "::1"}


QuotaSource = Literal["client_ip", "principal", "tier", "auth_method", "method", "host", "path"]


class QuotaEntry(Strict):
    """One descriptor entry: a key and where its value comes from (exactly one source)."""

    key: str = Field(min_length=1)
    value: str | None = None  # a literal
    source: QuotaSource | None = None  # from the request or the identity just established
    header: HeaderName | None = None  # a request header
    context: str | None = None  # an Envoy context_extensions entry

    @model_validator(mode="after")
    def _one_source(self) -> QuotaEntry:
        given = [v for v in (self.value, self.source, self.header, self.context) if v is not None]
        if len(given) != 1:
            raise ValueError(
                f"entry {self.key!r} needs exactly one of 'value', 'source', 'header', 'context'"
            )
        if self.header is not None:
            object.__setattr__(self, "header", header_name(self.header))
        return self


class QuotaDescriptor(Strict):
    entries: list[QuotaEntry] = Field(min_length=1)
    # Only for these methods (e.g. writes); empty means every method.
    methods: list[str] = Field(default_factory=list)

    @field_validator("methods")
    @classmethod
    def _upper(cls, value: list[str]) -> list[str]:
        return [method.upper() for method in value]


class CheckQuota(Strict):
    """Enforce rate limits inside Check (one gRPC call per request for auth, RBAC and quota).

    Descriptors are built like Envoy's rate_limits actions, with the identity available; a
    descriptor whose value is missing (e.g. no principal on an anonymous route) is skipped.
    """

    domain: str = Field(min_length=1)
    descriptors: list[QuotaDescriptor] = Field(min_length=1)


class TracingSettings(Strict):
    """OpenTelemetry traces, continuing Envoy's trace (traceparent in gRPC metadata)."""

    # "none": a no-op tracer and no per-request cost beyond a flag check.
    exporter: Literal["none", "otlp_grpc", "otlp_http"] = "none"
    # e.g. http://jaeger:4317 (gRPC) or http://jaeger:4318/v1/traces (HTTP)
    endpoint: str | None = None
    sampling_ratio: float = Field(default=1.0, ge=0.0, le=1.0)
    # Record sha256(principal)[:16] instead of the principal in spans.
    hash_principal: bool = False

    @model_validator(mode="after")
    def _endpoint_for_exporter(self) -> TracingSettings:
        if self.exporter != "none" and not self.endpoint:
            raise ValueError(f"tracing exporter {self.exporter!r} needs an 'endpoint'")
        return self


class MetricsSettings(Strict):
    """Prometheus /metrics, /healthz and /readyz on their own HTTP port."""

    # None disables the port. Loopback by default.
    listen: str | None = "127.0.0.1:9102"
    # "sha256:<hex>" of a bearer token required on /metrics (health stays open).
    token_hash: Sha256Hash | None = None
    # A port of its own with a cap of its own: probes still pass while the check ports are full.
    connections: ConnectionLimits = ConnectionLimits(max_connections=32)


class AuditSettings(Strict):
    """One JSON line per decision, ECS field names (see docs/observability.md)."""

    enabled: bool = True
    # "stdout", "stderr" or a file path (appended to).
    output: str = "stdout"
    # Records accepted but not yet written, in bytes (a record holds the few request fields
    # its line needs, never the headers). Bounds memory while the output stalls.
    max_queue_bytes: int = Field(default=8 * 1024 * 1024, ge=64 * 1024)
    # A full queue: "drop" the record (counted in authz_audit_records_dropped_total), or
    # "refuse" the request (503 audit_unavailable; failed writes are then retried, not dropped).
    when_full: Literal["drop", "refuse"] = "drop"


class TelemetrySettings(Strict):
    """Read at start; changing it needs a restart."""

    service_name: str = "authz-service"
    resource_attributes: dict[str, str] = Field(default_factory=dict)
    tracing: TracingSettings = TracingSettings()
    metrics: MetricsSettings = MetricsSettings()
    audit: AuditSettings = AuditSettings()


class PathMatch(Strict):
    exact: str | None = None
    prefix: str | None = None
    glob: str | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> PathMatch:
        given = [v for v in (self.exact, self.prefix, self.glob) if v is not None]
        if len(given) != 1:
            raise ValueError("a path match names exactly one of 'exact', 'prefix' or 'glob'")
        if not given[0].startswith("/"):
            raise ValueError(f"path {given[0]!r} must start with '/'")
        return self


class RequestMatch(Strict):
    """Empty lists match everything; within a list any entry may match."""

    hosts: list[str] = Field(default_factory=list)
    methods: list[str] = Field(default_factory=list)
    paths: list[PathMatch] = Field(default_factory=list)

    @field_validator("methods")
    @classmethod
    def _upper(cls, value: list[str]) -> list[str]:
        return [method.upper() for method in value]

    @field_validator("hosts")
    @classmethod
    def _canonical_hosts(cls, value: list[str]) -> list[str]:
        # Requests are compared in this form too (authz/hosts.py): `Admin.Example.COM.`
        # in a rule matches `admin.example.com:443` in a request.
        return [canonical_host_pattern(host) for host in value]


class Requirement(Strict):
    """What an identity needs. All given conditions must hold."""

    roles_any: list[str] = Field(default_factory=list)
    roles_all: list[str] = Field(default_factory=list)
    scopes_all: list[str] = Field(default_factory=list)
    principals: list[str] = Field(default_factory=list)
    peer_principals: list[str] = Field(default_factory=list)
    auth_methods: list[Literal["jwt", "api_key", "mtls"]] = Field(default_factory=list)


class Rule(Strict):
    name: str = Field(min_length=1)
    match: RequestMatch = RequestMatch()
    # "anonymous": anyone; "authenticated": any verified identity; a Requirement: conditions.
    allow: Literal["anonymous", "authenticated"] | Requirement | None = None
    deny: bool = False

    @model_validator(mode="after")
    def _allow_xor_deny(self) -> Rule:
        if self.deny == (self.allow is not None):
            raise ValueError(f"rule {self.name!r} needs exactly one of 'allow' or 'deny: true'")
        return self


class Policy(Strict):
    rules: list[Rule] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique_names(self) -> Policy:
        names = [rule.name for rule in self.rules]
        repeat = _first_repeat(names)
        if repeat is not None:
            raise FieldError(
                f"rule names must be unique, {names[repeat]!r} is repeated",
                ("rules", repeat, "name"),
            )
        return self


class PolicySelection(Strict):
    # The `context_extensions` key (set per route or virtual host in Envoy) naming the policy.
    context_key: str = "policy"
    default: str = "default"


class Config(Strict):
    server: ServerSettings = ServerSettings()
    jwt_providers: list[JwtProvider] = Field(default_factory=list)
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
        repeat = _first_repeat([provider.name for provider in self.jwt_providers])
        if repeat is not None:
            raise FieldError("jwt provider names must be unique", ("jwt_providers", repeat, "name"))
        repeat = _first_repeat([provider.issuer for provider in self.jwt_providers])
        if repeat is not None:
            raise FieldError(
                "two jwt providers have the same issuer", ("jwt_providers", repeat, "issuer")
            )
        if self.policy_selection.default not in self.policies:
            raise FieldError(
                f"{self.policy_selection.default!r} is not one of the policies: "
                f"{', '.join(sorted(self.policies))}",
                ("policy_selection", "default"),
            )
        if self.check_quota is not None and self.rate_limit is None:
            raise FieldError(
                "check_quota needs a rate_limit section (the limits and their store)",
                ("check_quota",),
            )
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
