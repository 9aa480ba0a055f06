"""A Decision -> what Envoy should do with the request, as plain data (no protobuf).

Allow: identity headers for the upstream (overwriting any client copy), every other identity
header the client sent removed, credentials stripped when configured (credential headers, and
token cookies cut out of the Cookie header), method-override headers removed, dynamic metadata
for the rate-limit filter. Deny: status, `WWW-Authenticate` (RFC 6750), reason header, JSON body.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field

from authz_service.authn.cookie_strip import CookieStripper
from authz_service.decisions import (
    Decision,
    Identity,
    Outcome,
    Reason,
    RequestAttributes,
    http_status,
)
from authz_service.schema import Config

REASON_HEADER = "x-authz-reason"

_ERROR = {
    Outcome.UNAUTHENTICATED: "unauthenticated",
    Outcome.FORBIDDEN: "forbidden",
    Outcome.RATE_LIMITED: "rate_limited",
    Outcome.UNAVAILABLE: "unavailable",
}


@dataclass(frozen=True, slots=True)
class AllowResponse:
    headers_to_set: Mapping[str, str]
    headers_to_remove: tuple[str, ...]
    dynamic_metadata: Mapping[str, str]
    # The whole Cookie header the upstream should get (token cookies cut out), for gateways
    # that replace it rather than apply set/remove (nginx, Traefik). None: the request had none.
    upstream_cookie: str | None = None


@dataclass(frozen=True, slots=True)
class DenyResponse:
    status: int
    headers: Mapping[str, str]
    body: str
    dynamic_metadata: Mapping[str, str] = field(default_factory=dict)


def _quoted(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


_MAX_DESCRIPTION = 200


# Refusals answered with a DPoP challenge (RFC 9449 7.1): the proof was missing or failed.
DPOP_REASONS = frozenset(
    {
        Reason.DPOP_PROOF_MISSING,
        Reason.INVALID_DPOP_PROOF,
        Reason.DPOP_PROOF_REPLAYED,
        Reason.USE_DPOP_NONCE,
    }
)


def _description(message: str) -> str:
    """RFC 6750 error_description: printable ASCII only; messages may quote token content."""
    printable = "".join(ch for ch in message if " " <= ch <= "~")
    return _quoted(printable[:_MAX_DESCRIPTION])


class ResponsePolicy:
    def __init__(self, config: Config, credential_headers: frozenset[str]):
        names = config.identity_headers
        self._realm = _quoted(config.realm)
        # RFC 9449 7.1: a DPoP challenge names the proof algorithms accepted.
        self._dpop_algs = " ".join(
            sorted({alg for provider in config.jwt_providers for alg in provider.dpop.algorithms})
        )
        self._subject = names.subject
        self._roles = names.roles
        self._scopes = names.scopes
        self._tier = names.tier
        self._method = names.auth_method
        self._issuer = names.issuer
        claim_headers = {
            header
            for provider in config.jwt_providers
            for header in provider.claims_to_headers.values()
        }
        identity_names = {
            name
            for name in (
                names.subject,
                names.roles,
                names.scopes,
                names.tier,
                names.auth_method,
                names.issuer,
            )
            if name
        }
        self.identity_header_names = frozenset(
            identity_names | claim_headers | set(names.always_remove)
        )
        overrides = config.method_overrides
        override_headers = frozenset(overrides.headers) if overrides.strip else frozenset()
        self._strip = (
            credential_headers if names.strip_credentials else frozenset()
        ) | override_headers
        token_cookies = {
            source.cookie
            for provider in config.jwt_providers
            for source in provider.token_sources
            if source.cookie
        }
        self._cookies = CookieStripper(token_cookies if names.strip_credentials else ())

    def rewrites_cookies(self, request: RequestAttributes) -> bool:
        """Does the allow answer for `request` depend on its Cookie header? (Cheap.)"""
        if not self._cookies.names:
            return False
        cookie = request.headers.get("cookie")
        return cookie is not None and self._cookies.may_carry_token(cookie)

    def carries_cookie(self, request: RequestAttributes) -> bool:
        """Does the allow answer for `request` repeat its Cookie header? (With token cookies
        stripped, for the gateways that replace the whole header with the answer's.)"""
        return bool(self._cookies.names) and "cookie" in request.headers

    def allow(self, decision: Decision, request: RequestAttributes | None = None) -> AllowResponse:
        """`request`, when given, lets the answer cut token cookies out of its Cookie header."""
        identity = decision.identity
        headers = self._identity_headers(identity) if identity else {}
        removed = (self.identity_header_names - headers.keys()) | self._strip
        # Gateways that replace the whole Cookie header get it even when nothing is cut, so
        # one gateway config is right whether credentials are stripped or not.
        upstream_cookie = request.headers.get("cookie") if request is not None else None
        if upstream_cookie is not None and self._cookies.names:
            cookie, upstream_cookie = upstream_cookie, self._cookies.cut(upstream_cookie)
            if upstream_cookie != cookie:
                if upstream_cookie:
                    headers["cookie"] = upstream_cookie
                else:
                    removed = removed | {"cookie"}
        metadata = {"policy": decision.policy, "rule": decision.rule}
        if identity is not None:
            metadata.update(
                principal=identity.principal,
                auth_method=identity.method.value,
                tier=identity.tier,
                roles=",".join(sorted(identity.roles)),
            )
        return AllowResponse(headers, tuple(sorted(removed)), metadata, upstream_cookie)

    def _identity_headers(self, identity: Identity) -> dict[str, str]:
        headers: dict[str, str] = dict(identity.claims)
        values = (
            (self._subject, identity.principal),
            (self._roles, ",".join(sorted(identity.roles))),
            (self._scopes, " ".join(sorted(identity.scopes))),
            (self._tier, identity.tier),
            (self._method, identity.method.value),
            (self._issuer, identity.issuer),
        )
        for name, value in values:
            if name and value:
                headers[name] = value
        return headers

    def deny(self, decision: Decision) -> DenyResponse:
        status = http_status(decision.outcome, decision.reason)
        headers = {
            "content-type": "application/json",
            "cache-control": "no-store",
            REASON_HEADER: decision.reason.value,
        }
        if decision.outcome is Outcome.UNAUTHENTICATED:
            scheme = "DPoP" if decision.reason in DPOP_REASONS else "Bearer"
            challenge = f'{scheme} realm="{self._realm}"'
            if scheme == "DPoP":
                challenge += f', algs="{self._dpop_algs}"'
            if decision.bearer_error:
                challenge += (
                    f', error="{decision.bearer_error}", '
                    f'error_description="{_description(decision.message)}"'
                )
            for name, value in decision.challenge.items():
                challenge += f', {name}="{_quoted(value)}"'
            headers["www-authenticate"] = challenge
        headers.update(decision.extra_headers)
        body = decision.body or json.dumps(
            {
                "error": _ERROR.get(decision.outcome, "forbidden"),
                "reason": decision.reason.value,
                "message": decision.message,
            },
            separators=(",", ":"),
        )
        metadata = {
            "policy": decision.policy,
            "rule": decision.rule,
            "reason": decision.reason.value,
        }
        return DenyResponse(status, headers, body, metadata)
