"""examples/ratelimit/domains/gateway.yaml limits every descriptor envoy/envoy.yaml builds."""

from __future__ import annotations

import pytest

from authz_service.ratelimit.rules import RateLimitRules, compile_rules, load_domain_file
from tests.support import REPO_ROOT

# What the public listener's routes send (tests/e2e/test_gateway_ratelimit.py checks these).
DESCRIPTORS = [
    [("remote_address", "203.0.113.7")],
    [("user", "alice")],
    [("tier", "gold"), ("user", "alice")],
    [("tier", "silver"), ("user", "alice")],
    [("tier", "free"), ("user", "alice")],
    [("method_class", "write"), ("remote_address", "203.0.113.7")],
    [("endpoint", "api")],
    [("endpoint", "admin")],
    [("endpoint", "downloads")],
]


@pytest.fixture(scope="module")
def limits() -> RateLimitRules:
    return compile_rules(
        [load_domain_file(REPO_ROOT / "examples" / "ratelimit" / "domains" / "gateway.yaml")]
    )


@pytest.mark.parametrize("entries", DESCRIPTORS, ids=str)
def test_every_descriptor_has_a_limit(
    limits: RateLimitRules, entries: list[tuple[str, str]]
) -> None:
    assert limits.get_limits("gateway", entries)


def test_tiers_have_different_per_user_limits(limits: RateLimitRules) -> None:
    per_tier = {
        tier: limits.get_limits("gateway", [("tier", tier), ("user", "alice")])[0]
        for tier in ("gold", "silver", "free")
    }
    assert len({repr(limit) for limit in per_tier.values()}) == 3


def test_the_domain_is_the_one_envoy_sends() -> None:
    template = (REPO_ROOT / "envoy" / "envoy.yaml").read_text()
    assert "domain: gateway" in template
    assert (
        "domain: gateway"
        in (REPO_ROOT / "examples" / "ratelimit" / "domains" / "gateway.yaml").read_text()
    )
