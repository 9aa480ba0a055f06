"""Explain and Check run the same stages, so they cannot disagree: the same requests, one per
reason a decision can have, fed to both give the same outcome, reason, rule and identity.

Real JWTs from a dev IdP serving its JWKS on loopback, API keys, brute-force lockout,
one-time tokens, revocation and quota in Check on the memory store. Explain goes first and,
having no side effect, leaves Check the state it would have met anyway.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
import pytest

from authz_service.authn.jwks_registry import JwksRegistry
from authz_service.authn.revocation import RevocationList
from authz_service.config.loader import load_config_file
from authz_service.decisions import Decision, Reason, RequestAttributes
from authz_service.services.check import CheckService
from authz_service.services.compiled_config import QuotaStoreHolder, compile_config
from tests.support.authz_config import api_key_hash, write_config
from tests.support.idp import running_idp
from tools.dev_idp import DevIdentityProvider

# The lockout counts in one-minute windows: never across a minute boundary.
pytestmark = pytest.mark.usefixtures("fresh_minute")

API_KEY = "reader-key"
QUOTA = 2


def config_document(idp: DevIdentityProvider) -> dict[str, Any]:
    return {
        "admin": {"listen": None},
        "telemetry": {"metrics": {"listen": None}, "audit": {"enabled": False}},
        "jwt_providers": [
            {
                "name": "dev",
                "issuer": idp.issuer,
                "audiences": [idp.audience],
                "jwks_uri": idp.jwks_uri,
                "roles_claims": ["realm_access.roles"],
                "replay_protection": {"enabled": True},
            }
        ],
        "api_keys": {
            "header": "x-api-key",
            "keys": [
                {"name": "k", "hash": api_key_hash(API_KEY), "principal": "svc:k", "roles": []}
            ],
        },
        "policy_selection": {"default": "main"},
        "policies": {
            "main": {
                "rules": [
                    {
                        "name": "public",
                        "match": {"paths": [{"prefix": "/public/"}]},
                        "allow": "anonymous",
                    },
                    {
                        "name": "admin",
                        "match": {"paths": [{"prefix": "/admin/"}]},
                        "allow": {"roles_any": ["admin"]},
                    },
                    {
                        "name": "reports",
                        "match": {"methods": ["GET"], "paths": [{"prefix": "/reports/"}]},
                        "allow": {"roles_any": ["reader"]},
                    },
                    {
                        "name": "api",
                        "match": {"paths": [{"prefix": "/api/"}]},
                        "allow": "authenticated",
                    },
                    {"name": "open-reads", "match": {"methods": ["GET"]}, "allow": "anonymous"},
                ]
            }
        },
        "rate_limit": {
            "store": "memory",
            "domains": [
                {
                    "domain": "agree",
                    "descriptors": [
                        {
                            "key": "user",
                            "rate_limit": {
                                "unit": "hour",
                                "requests_per_unit": QUOTA,
                                "algorithm": "token_bucket",
                            },
                        }
                    ],
                }
            ],
            "brute_force": {"enabled": True, "max_failures": 2, "window": "1m", "lockout": "1m"},
        },
        "check_quota": {
            "domain": "agree",
            "descriptors": [{"entries": [{"key": "user", "source": "principal"}]}],
        },
    }


@dataclass
class Service:
    checks: CheckService
    revocations: RevocationList
    idp: DevIdentityProvider
    addresses: Iterator[int] = field(default_factory=lambda: iter(range(1, 250)))

    def request(
        self,
        path: str,
        *,
        token: str | None = None,
        headers: dict[str, str] | None = None,
        method: str = "GET",
        source: str | None = None,
    ) -> RequestAttributes:
        sent = dict(headers or {})
        if token is not None:
            sent["authorization"] = f"Bearer {token}"
        return RequestAttributes(
            method=method,
            host="api.example.com",
            path=path,
            headers=sent,
            # Each case its own address: one case's failures never lock another out.
            source_address=source or f"203.0.113.{next(self.addresses)}",
        )

    def token(self, subject: str, *roles: str) -> str:
        return self.idp.mint(subject, roles=list(roles))


@pytest.fixture(scope="module")
def idp() -> Iterator[DevIdentityProvider]:
    with running_idp() as provider:
        yield provider


@pytest.fixture
async def service(tmp_path: Path, idp: DevIdentityProvider) -> AsyncIterator[Service]:
    path = write_config(tmp_path / "authz.yaml", config_document(idp))
    registry, stores = JwksRegistry(), QuotaStoreHolder()
    compiled = compile_config(load_config_file(path), registry, stores)
    revocations = RevocationList()
    try:
        yield Service(CheckService(lambda: compiled, revocations), revocations, idp)
    finally:
        await registry.close()
        await stores.close()


# A case: what it sets up (through Check, as traffic would), then the request to compare.
Case = Callable[[Service], Awaitable[RequestAttributes]]


async def allowed(s: Service) -> RequestAttributes:
    return s.request("/api/orders", token=s.token("alice", "reader"))


async def anonymous(s: Service) -> RequestAttributes:
    return s.request("/public/readme")


async def missing_token(s: Service) -> RequestAttributes:
    return s.request("/api/orders")


async def bad_token(s: Service) -> RequestAttributes:
    return s.request("/api/orders", token="not.a.jwt")


async def missing_role(s: Service) -> RequestAttributes:
    return s.request("/admin/users", token=s.token("bob", "reader"))


async def locked_out(s: Service) -> RequestAttributes:
    address = "198.51.100.66"
    for _ in range(2):  # max_failures wrong keys from one address
        await s.checks.check(s.request("/api/x", headers={"x-api-key": "wrong"}, source=address))
    return s.request("/api/orders", headers={"x-api-key": API_KEY}, source=address)


async def rate_limited(s: Service) -> RequestAttributes:
    for _ in range(QUOTA):  # each use its own one-time token, one principal's quota
        assert (await s.checks.check(s.request("/api/x", token=s.token("carol")))).decision.allowed
    return s.request("/api/orders", token=s.token("carol"))


async def replayed(s: Service) -> RequestAttributes:
    token = s.token("dave")
    assert (await s.checks.check(s.request("/api/x", token=token))).decision.allowed
    return s.request("/api/orders", token=token)


async def revoked(s: Service) -> RequestAttributes:
    token = s.token("erin")
    jti = jwt.decode(token, options={"verify_signature": False})["jti"]
    s.revocations.add_jti(jti, expires_at=4_000_000_000)
    return s.request("/api/orders", token=token)


async def bad_request(s: Service) -> RequestAttributes:
    return s.request("/api/%2e%2e/admin/users")


async def method_override(s: Service) -> RequestAttributes:
    headers = {"x-http-method-override": "DELETE"}
    return s.request("/reports/q1", token=s.token("frank", "reader"), headers=headers)


async def servlet_parameters(s: Service) -> RequestAttributes:
    # As sent, under no prefix but the open reads; a Servlet container reads /admin/users.
    return s.request("/admin;x/users")


CASES: list[tuple[Case, Reason, str]] = [
    (allowed, Reason.ALLOWED, "api"),
    (anonymous, Reason.ANONYMOUS_ALLOWED, "public"),
    (missing_token, Reason.AUTHENTICATION_REQUIRED, "api"),
    (bad_token, Reason.MALFORMED_TOKEN, ""),
    (missing_role, Reason.MISSING_ROLE, "admin"),
    (locked_out, Reason.LOCKED_OUT, ""),
    (rate_limited, Reason.RATE_LIMITED, "api"),
    (replayed, Reason.TOKEN_REPLAYED, ""),
    (revoked, Reason.TOKEN_REVOKED, ""),
    (bad_request, Reason.BAD_REQUEST, ""),
    (method_override, Reason.NO_MATCHING_RULE, ""),
    (servlet_parameters, Reason.AUTHENTICATION_REQUIRED, "admin"),
]


def compared(decision: Decision) -> tuple[object, ...]:
    return decision.outcome, decision.reason, decision.rule, decision.identity


@pytest.mark.parametrize(("case", "reason", "rule"), CASES, ids=[c.__name__ for c, _, _ in CASES])
async def test_explain_and_check_give_the_same_decision(
    service: Service, case: Case, reason: Reason, rule: str
) -> None:
    sent = await case(service)

    first = await service.checks.explain(sent)
    again = await service.checks.explain(sent)  # explaining changed nothing
    checked = (await service.checks.check(sent)).decision

    assert compared(first.decision) == compared(again.decision) == compared(checked)
    assert (checked.reason, checked.rule) == (reason, rule)
