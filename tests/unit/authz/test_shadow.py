"""Shadow rules and shadow policies: decided beside the real policy, never enforced."""

from __future__ import annotations

from typing import Any

import pytest

from authz_service.authz.rbac import PolicySet, Trace
from authz_service.config.errors import ConfigError
from authz_service.decisions import AuthMethod, Identity, Outcome, Reason, RequestAttributes
from tests.support.authz_config import config_from

READER = Identity(principal="rita", method=AuthMethod.JWT, roles=frozenset({"reader"}))
GET_ORDERS = RequestAttributes(method="GET", host="api.example.com", path="/api/orders")
API = {"name": "api", "match": {"paths": [{"prefix": "/api/"}]}, "allow": "authenticated"}
ADMINS_ONLY = {
    "name": "admins-only",
    "match": {"paths": [{"prefix": "/api/"}]},
    "allow": {"roles_any": ["admin"]},
}


def policy_set(policies: dict[str, Any]) -> PolicySet:
    config = config_from({"policies": policies})
    return PolicySet(config.policies, config.policy_selection)


def test_a_shadow_rule_is_not_enforced_but_its_verdict_is_kept() -> None:
    rules = [{**ADMINS_ONLY, "mode": "shadow"}, API]
    decision = policy_set({"default": {"rules": rules}}).authorize(GET_ORDERS, READER)

    assert decision.allowed and decision.rule == "api"
    assert decision.shadow is not None
    assert (decision.shadow.outcome, decision.shadow.reason) == (
        Outcome.FORBIDDEN,
        Reason.MISSING_ROLE,
    )
    assert decision.shadow.rule == "admins-only" and not decision.shadow.agrees_with(decision)


def test_a_policy_without_shadow_rules_records_no_shadow() -> None:
    decision = policy_set({"default": {"rules": [API]}}).authorize(GET_ORDERS, READER)
    assert decision.shadow is None


def test_a_shadow_policy_is_decided_beside_the_one_it_shadows() -> None:
    policies = {
        "default": {"rules": [API]},
        "candidate": {"shadow_of": "default", "rules": [ADMINS_ONLY]},
    }
    trace = Trace()
    decision = policy_set(policies).authorize(GET_ORDERS, READER, trace)

    assert decision.allowed
    assert decision.shadow is not None and decision.shadow.policy == "candidate"
    assert decision.shadow.outcome is Outcome.FORBIDDEN
    assert trace.shadow == decision.shadow


def test_a_shadow_policy_cannot_be_selected_by_itself() -> None:
    policies = {
        "default": {"rules": [API]},
        "candidate": {"shadow_of": "default", "rules": [{"name": "all", "allow": "anonymous"}]},
    }
    selected = RequestAttributes(
        method="GET", host="h", path="/api/x", context={"policy": "candidate"}
    )
    decision = policy_set(policies).authorize(selected, None)
    assert decision.reason is Reason.UNKNOWN_POLICY


@pytest.mark.parametrize(
    "policies",
    [
        {"default": {"rules": [API]}, "c": {"shadow_of": "nowhere", "rules": [API]}},
        {"default": {"rules": [API]}, "c": {"shadow_of": "c", "rules": [API]}},
        {
            "default": {"rules": [{**ADMINS_ONLY, "mode": "shadow"}, API]},
            "c": {"shadow_of": "default", "rules": [API]},
        },
    ],
    ids=["unknown", "itself", "already-has-shadow-rules"],
)
def test_a_shadow_of_that_cannot_work_is_refused(policies: dict[str, Any]) -> None:
    with pytest.raises((ConfigError, ValueError), match="shadow"):
        config_from({"policies": policies})
