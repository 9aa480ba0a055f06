"""Inputs of a run: the 50-rule policy, the token pool, the service configs, the request bodies."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from benchmarks import messages
from tools.dev_idp import DevIdentityProvider
from tools.processes import REPO_ROOT, write_service_config

BASE_CONFIG = REPO_ROOT / "config" / "local.yaml"
POOL_SIZE = 1000
TIERS = ("gold", "silver", "bronze")
# The rule that allows the benchmark request (GET /api/orders/12345) comes 49th of 50; RBAC
# indexes rules by the path's first segment, so the request reaches 14 of the 50 (the 12
# host rules with prefix "/", orders-read, api-authenticated), not 48.
ORDERS_ROLE = "orders-reader"


def policy_rules(count: int = 50) -> list[dict[str, Any]]:
    """`count` rules in the shapes real policies use: prefixes, globs, exact paths, methods,
    roles, scopes, a deny; the rule allowing the benchmark request is second to last."""
    rules: list[dict[str, Any]] = [
        {"name": "health", "match": {"paths": [{"exact": "/healthz"}]}, "allow": "anonymous"}
    ]
    for index in range(1, count - 2):
        service = f"svc{index:02d}"
        shape = index % 4
        rule: dict[str, Any] = {"name": f"{service}-{shape}"}
        if shape == 0:
            rule["match"] = {"methods": ["GET", "HEAD"], "paths": [{"prefix": f"/{service}/"}]}
            rule["allow"] = {"roles_any": [f"{service}-reader", "admin"]}
        elif shape == 1:
            rule["match"] = {
                "methods": ["POST", "PUT", "DELETE"],
                "paths": [{"glob": f"/{service}/*/items/*"}],
            }
            rule["allow"] = {"roles_all": [f"{service}-writer", "employee"]}
        elif shape == 2:
            rule["match"] = {"hosts": [f"{service}.internal"], "paths": [{"prefix": "/"}]}
            rule["allow"] = {"scopes_all": [f"{service}:read"]}
        else:
            rule["match"] = {"paths": [{"exact": f"/{service}/admin"}]}
            rule["deny"] = True
        rules.append(rule)
    rules.append(
        {
            "name": "orders-read",
            "match": {"methods": ["GET", "HEAD"], "paths": [{"glob": "/api/orders/*"}]},
            "allow": {"roles_any": [ORDERS_ROLE, "admin"]},
        }
    )
    rules.append(
        {
            "name": "api-authenticated",
            "match": {"paths": [{"prefix": "/api/"}]},
            "allow": "authenticated",
        }
    )
    assert len(rules) == count
    return rules


# The worst case: every rule is tried on every request, and no cache helps.
WORST_CASE_PATHS = 10_000  # distinct request paths: more than RBAC's caches keep (4,096)


def worst_case_rules(count: int = 50) -> list[dict[str, Any]]:
    """`count` rules none of which the path index can skip (hosts only, globs whose first
    segment is a wildcard, methods with such globs), all tried and missed by
    GET /api/orders/N before the last one allows it."""
    rules: list[dict[str, Any]] = []
    for index in range(1, count):
        service = f"svc{index:02d}"
        shape = index % 3
        if shape == 0:
            rule: dict[str, Any] = {"match": {"hosts": [f"{service}.internal"]}}
        elif shape == 1:
            rule = {"match": {"paths": [{"glob": f"/*/{service}/*"}]}}
        else:
            rule = {"match": {"methods": ["GET"], "paths": [{"glob": f"/*/{service}/items/*"}]}}
        rule.update(name=f"{service}-{shape}", allow={"roles_any": [f"{service}-reader"]})
        rules.append(rule)
    rules.append(
        {
            "name": "orders-read",
            "match": {"methods": ["GET", "HEAD"], "paths": [{"glob": "/api/orders/*"}]},
            "allow": {"roles_any": [ORDERS_ROLE, "admin"]},
        }
    )
    assert len(rules) == count
    return rules


def worst_case_bodies(pool: TokenPool, size: int = WORST_CASE_PATHS) -> list[bytes]:
    """`size` Checks of the pool's tokens in turn, each for a path of its own."""
    tokens = pool.tokens
    return [
        messages.check_request(tokens[i % len(tokens)], i, f"/api/orders/{i}") for i in range(size)
    ]


def user(index: int) -> str:
    return f"user-{index:04d}"


@dataclass(frozen=True)
class TokenPool:
    idp: DevIdentityProvider
    tokens: tuple[str, ...]

    @classmethod
    def mint(cls, idp: DevIdentityProvider, size: int = POOL_SIZE) -> TokenPool:
        tokens = tuple(
            idp.mint(
                user(index),
                roles=[ORDERS_ROLE, "user"],
                scope="orders:read profile",
                lifetime_s=3000,  # within config/local.yaml's max_lifetime_s, longer than a run
                extra_claims={
                    "tier": TIERS[index % len(TIERS)],
                    "email": f"{user(index)}@example.com",
                },
            )
            for index in range(size)
        )
        return cls(idp, tokens)


def service_config(
    out: Path,
    *,
    port: int,
    jwks_uri: str,
    token_cache_max_entries: int = 10_000,
    extra: Mapping[str, Any] | None = None,
    rules: list[dict[str, Any]] | None = None,
) -> Path:
    """config/local.yaml with this run's addresses and the 50-rule policy."""
    return write_service_config(
        BASE_CONFIG,
        out,
        listen_port=port,
        jwks_uri=jwks_uri,
        overrides={
            "policies": {"public": {"rules": rules or policy_rules()}},
            "token_cache_max_entries": token_cache_max_entries,
            # The admin API has its own port and no part in a request; off, so that several
            # services (and a local stack on 9002) can run side by side.
            "admin": {"listen": None},
            **(extra or {}),
        },
    )


def http_check_section(port: int) -> dict[str, Any]:
    """The HTTP check endpoint on granian, mounted where ext_authz_http.yaml's prefix points."""
    endpoint = {"path": "/envoy", "integration": "envoy", "context": {"policy": "public"}}
    return {
        "http_check": {
            "listen": f"127.0.0.1:{port}",
            "server": "granian",
            "endpoints": [endpoint],
        }
    }


def rate_limit_section(redis_url: str) -> dict[str, Any]:
    """The `rate_limit:` section for scenario 2 and 3: the three descriptors of
    messages.rate_limit_request with limits no run reaches (every answer is OK)."""
    huge = 1_000_000_000
    return {
        "store": "redis",
        "redis": {"url": redis_url, "timeout_ms": 250},
        "domains": [
            {
                "domain": messages.RATE_LIMIT_DOMAIN,
                "descriptors": [
                    {
                        "key": "remote_address",
                        "rate_limit": {"unit": "second", "requests_per_unit": huge},
                    },
                    {"key": "user", "rate_limit": {"unit": "minute", "requests_per_unit": huge}},
                    {
                        "key": "tier",
                        "value": "gold",
                        "descriptors": [
                            {
                                "key": "endpoint",
                                "rate_limit": {"unit": "hour", "requests_per_unit": huge},
                            }
                        ],
                    },
                ],
            }
        ],
    }


def one_call_section(redis_url: str) -> dict[str, Any]:
    """Scenario 3's one-call mode: Check charges the same three descriptors itself."""
    return {
        "rate_limit": rate_limit_section(redis_url),
        "check_quota": {
            "domain": messages.RATE_LIMIT_DOMAIN,
            "descriptors": [
                {"entries": [{"key": "remote_address", "source": "client_ip"}]},
                {"entries": [{"key": "user", "source": "principal"}]},
                {
                    "entries": [
                        {"key": "tier", "source": "tier"},
                        {"key": "endpoint", "value": "orders-read"},
                    ]
                },
            ],
        },
    }


def rlqs_section(redis_url: str) -> dict[str, Any]:
    """Scenario 3's RLQS mode: the same limits and three buckets as the one-call mode, for
    Envoy's rate_limit_quota filters (usage and shares in the same Redis)."""
    one_call = one_call_section(redis_url)
    return {"rate_limit": one_call["rate_limit"], "quota_service": one_call["check_quota"]}


def write_frames(path: Path, bodies: list[bytes]) -> Path:
    path.write_bytes(messages.frames_file(bodies))
    return path


def check_bodies(pool: TokenPool) -> list[bytes]:
    return [messages.check_request(token, index) for index, token in enumerate(pool.tokens)]


def rate_limit_bodies(size: int = POOL_SIZE) -> list[bytes]:
    return [messages.rate_limit_request(user(index), index) for index in range(size)]


def dump_yaml(path: Path, document: Any) -> Path:
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path
