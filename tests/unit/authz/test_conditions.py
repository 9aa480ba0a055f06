"""Rules' `when:` conditions (CEL): what they see, how they decide, how they fail."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from authz_service.authn.jwks_registry import JwksRegistry
from authz_service.authz.conditions import MAX_LENGTH, BadCondition, Condition, variables
from authz_service.authz.rbac import PolicySet, Trace
from authz_service.config.errors import ConfigError
from authz_service.config.loader import load_config_file
from authz_service.decisions import AuthMethod, Identity, Reason, RequestAttributes
from authz_service.services.compiled_config import QuotaStoreHolder, compile_config
from tests.support.authz_config import config_from

ACME_ALICE = Identity(
    principal="alice",
    method=AuthMethod.JWT,
    roles=frozenset({"member"}),
    verified_claims={"tenant": "acme", "sub": "alice"},
)


def policies(*rules: dict[str, Any]) -> PolicySet:
    config = config_from({"policies": {"default": {"rules": list(rules)}}})
    return PolicySet(config.policies, config.policy_selection)


def get(path: str, **headers: str) -> RequestAttributes:
    return RequestAttributes(
        method="GET", host="api.example.com", path=path, headers=headers, source_address="10.1.2.3"
    )


TENANT_RULE = {
    "name": "own-tenant",
    "match": {"paths": [{"prefix": "/tenants/"}]},
    "allow": "authenticated",
    "when": "request.segments[1] == identity.claims.tenant",
}


def test_a_tenant_claim_equal_to_the_path_segment_allows() -> None:
    decision = policies(TENANT_RULE).authorize(get("/tenants/acme/orders"), ACME_ALICE)
    assert decision.allowed and decision.rule == "own-tenant"


def test_another_tenants_path_falls_through_to_no_matching_rule() -> None:
    decision = policies(TENANT_RULE).authorize(get("/tenants/globex/orders"), ACME_ALICE)
    assert not decision.allowed and decision.reason is Reason.NO_MATCHING_RULE


def test_a_missing_claim_is_an_error_that_never_allows() -> None:
    stranger = Identity(principal="bob", method=AuthMethod.JWT)
    decision = policies(TENANT_RULE).authorize(get("/tenants/acme/orders"), stranger)
    assert not decision.allowed


def test_a_failing_condition_on_a_deny_rule_denies() -> None:
    deny = {"name": "no-tier", "deny": True, "when": "identity.claims.missing == 'x'"}
    allow = {"name": "rest", "allow": "anonymous"}
    decision = policies(deny, allow).authorize(get("/x"), ACME_ALICE)
    assert decision.reason is Reason.DENIED_BY_RULE and decision.rule == "no-tier"


def test_headers_query_and_source_address_are_visible() -> None:
    rule = {
        "name": "internal",
        "allow": "anonymous",
        "when": "request.headers['x-internal'] == '1' && request.query['v'] == 'a b'"
        " && request.source_address.startsWith('10.')",
    }
    assert policies(rule).authorize(get("/p?v=a%20b", **{"x-internal": "1"}), None).allowed
    assert not policies(rule).authorize(get("/p?v=a%20b"), None).allowed


def test_explain_shows_each_conditions_value() -> None:
    trace = Trace()
    policies(TENANT_RULE).authorize(get("/tenants/globex/x"), ACME_ALICE, trace)
    assert [(c.rule, c.value) for c in trace.conditions] == [("own-tenant", "false")]
    assert "is false" in trace.rules[0].why


def test_a_non_boolean_result_is_an_error_shown_in_explain() -> None:
    condition = Condition("request.path", deny_rule=False)
    result = condition.evaluate(variables(get("/a"), None))
    assert not result.holds and result.shown.startswith("error: the result is str")


def test_a_syntax_error_names_the_column() -> None:
    with pytest.raises(BadCondition) as raised:
        Condition("request.path ==", deny_rule=False)
    assert raised.value.column == 16


def test_only_request_and_identity_can_be_named() -> None:
    with pytest.raises(BadCondition, match="unknown variable 'env'"):
        Condition("env.HOME == '/root'", deny_rule=False)


def test_comprehension_variables_are_not_unknown() -> None:
    condition = Condition("identity.roles.exists(r, r == 'member')", deny_rule=False)
    assert condition.evaluate(variables(get("/"), ACME_ALICE)).holds


def test_the_cost_bound_refuses_a_long_expression() -> None:
    with pytest.raises(BadCondition, match="longer than"):
        Condition("true && " * (MAX_LENGTH // 8 + 1) + "true", deny_rule=False)


def test_the_cost_bound_refuses_many_list_macros() -> None:
    source = "identity.roles.all(a, identity.roles.all(b, identity.roles.all(c, a == b)))"
    with pytest.raises(BadCondition, match="list macros"):
        Condition(source, deny_rule=False)


def test_a_bad_condition_fails_config_load_with_file_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "authz.yaml"
    path.write_text(
        "policies:\n"
        "  default:\n"
        "    rules:\n"
        "      - name: broken\n"
        "        allow: anonymous\n"
        "        when: request.path ==\n"
    )
    with pytest.raises(ConfigError) as raised:
        compile_config(load_config_file(path), JwksRegistry(), QuotaStoreHolder())
    message = str(raised.value)
    assert f"{path}:6: policies.default.rules.0.when:" in message
    assert "(column 16)" in message


def test_only_the_fields_an_expression_names_are_built() -> None:
    condition = Condition("identity.claims.tenant == request.segments[1]", deny_rule=False)
    seen = variables(get("/tenants/acme", **{"x-secret": "s"}), ACME_ALICE, condition.fields)

    assert condition.fields == {"claims", "segments"}
    assert seen == {
        "request": {"path": "/tenants/acme", "segments": ["tenants", "acme"]},
        "identity": {"claims": {"tenant": "acme", "sub": "alice"}},
    }
    assert condition.evaluate(seen).holds
