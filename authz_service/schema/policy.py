"""What a request needs to pass: the RBAC `policies:` and their rules, how a policy is picked
(`policy_selection:`), the identity headers handed to the upstream, and `method_overrides:`."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from authz_service.schema.base import FieldError, HeaderName, Strict, first_repeat, header_name
from authz_service.schema.hostnames import canonical_host_pattern

DEFAULT_HEADERS = ("x-http-method-override", "x-http-method", "x-method-override")
DEFAULT_QUERY_PARAMETERS = ("_method",)


class MethodOverrideSettings(Strict):
    """The `method_overrides:` section. Reloadable."""

    # Request headers that name another method; removed before the upstream when `strip`.
    headers: list[str] = Field(default_factory=lambda: list(DEFAULT_HEADERS))
    # Query parameters that name another method (decided on; the query is left as sent).
    query_parameters: list[str] = Field(default_factory=lambda: list(DEFAULT_QUERY_PARAMETERS))
    # false: pass the override headers on (the app relies on them); they are still decided on.
    strip: bool = True

    @field_validator("headers")
    @classmethod
    def _lower(cls, value: list[str]) -> list[str]:
        return [header_name(item) for item in value]

    @field_validator("query_parameters")
    @classmethod
    def _not_empty(cls, value: list[str]) -> list[str]:
        if any(not item or any(ch in item for ch in "&=;# ") for item in value):
            raise ValueError("query parameter names must be non-empty, without & = ; # or space")
        return value


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
    auth_methods: list[Literal["jwt", "api_key", "mtls", "introspection"]] = Field(
        default_factory=list
    )


class StepUp(Strict):
    """`rules[].step_up` (RFC 9470): how the user must have authenticated for this rule. A
    token that falls short is answered 401 `insufficient_user_authentication` naming what is
    needed, so the client re-authenticates. Example (YAML):

    step_up: {acr_values: [urn:example:mfa], max_age_s: 300}
    """

    # The token's `acr` must be one of these (empty: any).
    acr_values: list[str] = Field(default_factory=list)
    # The token's `auth_time` must be at most this old (absent `auth_time`: refused).
    max_age_s: float | None = Field(default=None, gt=0)


class Rule(Strict):
    name: str = Field(min_length=1)
    match: RequestMatch = RequestMatch()
    # "anonymous": anyone; "authenticated": any verified identity; a Requirement: conditions.
    allow: Literal["anonymous", "authenticated"] | Requirement | None = None
    deny: bool = False
    # Step-up (RFC 9470): the acr and authentication age this rule needs.
    step_up: StepUp | None = None
    # Sender-constrained tokens only on this route: a token not bound by DPoP is refused.
    require_dpop: bool = False
    # A CEL expression over `request` and `identity` (authz/conditions.py): the rule applies
    # only when it is true. Compiled when the config is loaded.
    when: str | None = Field(default=None, min_length=1)
    # "shadow": evaluated on every request and its would-be decision recorded (metric, span
    # attribute, audit field), never enforced: watch a tightened rule before switching it on.
    mode: Literal["enforce", "shadow"] = "enforce"

    @model_validator(mode="after")
    def _allow_xor_deny(self) -> Rule:
        if self.deny == (self.allow is not None):
            raise ValueError(f"rule {self.name!r} needs exactly one of 'allow' or 'deny: true'")
        if (self.step_up is not None or self.require_dpop) and self.allow in (None, "anonymous"):
            # Only an allow for a verified caller can ask how that caller authenticated.
            raise ValueError(
                f"rule {self.name!r}: 'step_up' and 'require_dpop' need an allow that "
                "is not 'anonymous'"
            )
        return self


class Policy(Strict):
    rules: list[Rule] = Field(default_factory=list)
    # This whole policy is a shadow of the named one: evaluated beside it on every request
    # that selects it, recorded, never enforced, and never selected by itself.
    shadow_of: str | None = None

    @model_validator(mode="after")
    def _unique_names(self) -> Policy:
        names = [rule.name for rule in self.rules]
        repeat = first_repeat(names)
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
