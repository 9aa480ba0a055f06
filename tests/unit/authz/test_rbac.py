from __future__ import annotations

from typing import Any

import pytest

from authz_service.authz import canonical_cache
from authz_service.authz.rbac import PolicySet, RuleTrace, Trace
from authz_service.decisions import (
    AuthMethod,
    AuthnFailure,
    Decision,
    Identity,
    Outcome,
    Reason,
    RequestAttributes,
)
from tests.support.authz_config import config_from

ALICE = Identity(
    principal="alice",
    method=AuthMethod.JWT,
    issuer="https://idp.example",
    roles=frozenset({"reader", "editor"}),
    scopes=frozenset({"reports:read"}),
)
BATCH = Identity(principal="svc:batch", method=AuthMethod.API_KEY, roles=frozenset({"internal"}))


def policies(*rules: dict[str, Any], **extra: Any) -> PolicySet:
    config = config_from({"policies": {"default": {"rules": list(rules)}}, **extra})
    return PolicySet(config.policies, config.policy_selection)


def request(
    path: str = "/api/items",
    method: str = "GET",
    host: str = "api.example.com",
    peer: str = "",
    context: dict[str, str] | None = None,
) -> RequestAttributes:
    return RequestAttributes(
        method=method, host=host, path=path, peer_principal=peer, context=context or {}
    )


def decide(
    policy_set: PolicySet,
    authn: Identity | AuthnFailure | None,
    req: RequestAttributes | None = None,
) -> Decision:
    return policy_set.authorize(req or request(), authn)


def test_first_matching_rule_decides_even_when_a_later_rule_would_allow() -> None:
    rules = policies(
        {
            "name": "admins-only",
            "match": {"paths": [{"prefix": "/api/"}]},
            "allow": {"roles_any": ["admin"]},
        },
        {"name": "everyone", "allow": "authenticated"},
    )
    decision = decide(rules, ALICE)
    assert (decision.outcome, decision.reason, decision.rule) == (
        Outcome.FORBIDDEN,
        Reason.MISSING_ROLE,
        "admins-only",
    )


def test_rules_are_tried_in_order_until_one_matches() -> None:
    rules = policies(
        {"name": "writes", "match": {"methods": ["POST"]}, "allow": {"roles_any": ["admin"]}},
        {"name": "other-host", "match": {"hosts": ["*.internal"]}, "deny": True},
        {"name": "reads", "match": {"methods": ["get"]}, "allow": "authenticated"},
    )
    decision = decide(rules, ALICE)
    assert decision.allowed
    assert decision.rule == "reads"
    assert decision.identity == ALICE


def test_no_matching_rule_is_a_default_deny() -> None:
    rules = policies(
        {"name": "docs", "match": {"paths": [{"prefix": "/docs/"}]}, "allow": "anonymous"}
    )
    decision = decide(rules, ALICE)
    assert (decision.outcome, decision.reason, decision.rule) == (
        Outcome.FORBIDDEN,
        Reason.NO_MATCHING_RULE,
        "",
    )


def test_anonymous_rule_allows_a_request_without_credentials() -> None:
    rules = policies({"name": "docs", "allow": "anonymous"})
    decision = decide(rules, None)
    assert decision.allowed
    assert decision.reason is Reason.ANONYMOUS_ALLOWED
    assert decision.identity is None


def test_anonymous_rule_keeps_the_identity_of_an_authenticated_caller() -> None:
    decision = decide(policies({"name": "docs", "allow": "anonymous"}), ALICE)
    assert (decision.reason, decision.identity) == (Reason.ALLOWED, ALICE)


def test_authenticated_rule_without_credentials_is_401_without_a_bearer_error() -> None:
    decision = decide(policies({"name": "api", "allow": "authenticated"}), None)
    assert decision.outcome is Outcome.UNAUTHENTICATED
    assert decision.reason is Reason.AUTHENTICATION_REQUIRED
    assert decision.bearer_error == ""
    assert decision.rule == "api"


@pytest.mark.parametrize(
    ("requirement", "identity", "reason"),
    [
        ({"roles_any": ["admin", "owner"]}, ALICE, Reason.MISSING_ROLE),
        ({"roles_all": ["reader", "admin"]}, ALICE, Reason.MISSING_ROLE),
        ({"scopes_all": ["reports:read", "reports:write"]}, ALICE, Reason.MISSING_SCOPE),
        ({"principals": ["svc:*"]}, ALICE, Reason.PRINCIPAL_NOT_ALLOWED),
        ({"auth_methods": ["api_key", "mtls"]}, ALICE, Reason.PRINCIPAL_NOT_ALLOWED),
        ({"peer_principals": ["spiffe://prod/*"]}, BATCH, Reason.PRINCIPAL_NOT_ALLOWED),
    ],
)
def test_unmet_requirement_is_403_with_its_reason(
    requirement: dict[str, Any], identity: Identity, reason: Reason
) -> None:
    decision = decide(policies({"name": "guarded", "allow": requirement}), identity)
    assert (decision.outcome, decision.reason, decision.rule) == (
        Outcome.FORBIDDEN,
        reason,
        "guarded",
    )


@pytest.mark.parametrize(
    ("requirement", "identity"),
    [
        ({"roles_any": ["admin", "editor"]}, ALICE),
        ({"roles_all": ["reader", "editor"]}, ALICE),
        ({"scopes_all": ["reports:read"]}, ALICE),
        ({"principals": ["svc:*"]}, BATCH),
        ({"auth_methods": ["api_key"], "roles_all": ["internal"]}, BATCH),
        ({}, ALICE),
    ],
)
def test_met_requirement_allows(requirement: dict[str, Any], identity: Identity) -> None:
    decision = decide(policies({"name": "guarded", "allow": requirement}), identity)
    assert (decision.outcome, decision.reason) == (Outcome.ALLOW, Reason.ALLOWED)


def test_peer_principals_are_matched_against_the_mtls_peer_of_the_request() -> None:
    rules = policies({"name": "mesh", "allow": {"peer_principals": ["spiffe://prod/ns/*/sa/*"]}})
    assert decide(rules, BATCH, request(peer="spiffe://prod/ns/billing/sa/batch")).allowed
    refused = decide(rules, BATCH, request(peer="spiffe://staging/ns/billing/sa/batch"))
    assert refused.reason is Reason.PRINCIPAL_NOT_ALLOWED


def test_peer_principal_wildcard_is_not_met_by_a_request_without_a_peer() -> None:
    rules = policies({"name": "mesh", "allow": {"peer_principals": ["*"]}})
    decision = decide(rules, BATCH, request(peer=""))
    assert decision.reason is Reason.PRINCIPAL_NOT_ALLOWED


def test_deny_rule_forbids_whoever_the_caller_is() -> None:
    rules = policies(
        {"name": "no-debug", "match": {"paths": [{"prefix": "/debug"}]}, "deny": True},
        {"name": "anyone", "allow": "anonymous"},
    )
    for authn in (None, ALICE):
        decision = decide(rules, authn, request("/debug/vars"))
        assert (decision.outcome, decision.reason, decision.rule) == (
            Outcome.FORBIDDEN,
            Reason.DENIED_BY_RULE,
            "no-debug",
        )


def test_invalid_credential_is_401_even_on_an_anonymous_route() -> None:
    failure = AuthnFailure(Reason.TOKEN_EXPIRED, "token has expired")
    decision = decide(policies({"name": "docs", "allow": "anonymous"}), failure)
    assert decision.outcome is Outcome.UNAUTHENTICATED
    assert decision.reason is Reason.TOKEN_EXPIRED
    assert decision.bearer_error == "invalid_token"


def test_match_uses_the_canonical_path_so_dot_segments_cannot_dodge_a_rule() -> None:
    rules = policies(
        {
            "name": "admin",
            "match": {"paths": [{"prefix": "/admin/"}]},
            "allow": {"roles_any": ["admin"]},
        },
        {"name": "public", "match": {"paths": [{"prefix": "/public/"}]}, "allow": "anonymous"},
    )
    decision = decide(rules, None, request("/public/../admin/users"))
    assert decision.outcome is Outcome.UNAUTHENTICATED
    assert decision.rule == "admin"


def test_ambiguous_path_is_refused_as_a_bad_request() -> None:
    decision = decide(policies({"name": "anyone", "allow": "anonymous"}), None, request("/a%2fb"))
    assert (decision.outcome, decision.reason) == (Outcome.FORBIDDEN, Reason.BAD_REQUEST)


def test_hosts_match_without_port_and_case_insensitively() -> None:
    rules = policies(
        {"name": "api-host", "match": {"hosts": ["api.example.com"]}, "allow": "anonymous"}
    )
    assert decide(rules, None, request(host="API.example.com:8443")).allowed
    assert not decide(rules, None, request(host="web.example.com")).allowed


def test_exact_prefix_and_glob_paths() -> None:
    rules = policies(
        {
            "name": "mixed",
            "match": {
                "paths": [{"exact": "/health"}, {"prefix": "/static/"}, {"glob": "/u/*/avatar"}]
            },
            "allow": "anonymous",
        }
    )
    for path in ("/health", "/static/app.js", "/u/42/avatar"):
        assert decide(rules, None, request(path)).allowed, path
    for path in ("/health/x", "/u/42/x/avatar"):
        assert not decide(rules, None, request(path)).allowed, path


def test_context_extensions_select_the_policy() -> None:
    config = config_from(
        {
            "policy_selection": {"context_key": "listener", "default": "public"},
            "policies": {
                "public": {"rules": [{"name": "open", "allow": "anonymous"}]},
                "internal": {"rules": [{"name": "svc", "allow": {"principals": ["svc:*"]}}]},
            },
        }
    )
    policy_set = PolicySet(config.policies, config.policy_selection)
    assert decide(policy_set, None).policy == "public"
    internal = decide(policy_set, ALICE, request(context={"listener": "internal"}))
    assert (internal.policy, internal.rule, internal.reason) == (
        "internal",
        "svc",
        Reason.PRINCIPAL_NOT_ALLOWED,
    )


def test_unknown_policy_in_context_is_403_unknown_policy() -> None:
    decision = decide(
        policies({"name": "open", "allow": "anonymous"}),
        None,
        request(context={"policy": "nope"}),
    )
    assert (decision.outcome, decision.reason, decision.policy) == (
        Outcome.FORBIDDEN,
        Reason.UNKNOWN_POLICY,
        "nope",
    )


def test_explain_trace_records_every_rule_tried_and_the_deciding_one() -> None:
    rules = policies(
        {"name": "writes", "match": {"methods": ["POST"]}, "allow": {"roles_any": ["admin"]}},
        {"name": "docs", "match": {"paths": [{"prefix": "/docs/"}]}, "allow": "anonymous"},
        {
            "name": "api",
            "match": {"paths": [{"prefix": "/api/"}]},
            "allow": {"roles_any": ["admin"]},
        },
        {"name": "never-reached", "allow": "anonymous"},
    )
    trace = Trace()
    decision = rules.authorize(request("/api/../api/items"), ALICE, trace)
    assert decision.reason is Reason.MISSING_ROLE
    assert trace.policy == "default"
    assert trace.path == "/api/items"
    assert [(r.rule, r.matched, r.decided) for r in trace.rules] == [
        ("writes", False, False),
        ("docs", False, False),
        ("api", True, True),
    ]
    assert "method GET" in trace.rules[0].why
    assert "prefix /docs/" in trace.rules[1].why
    assert "admin" in trace.rules[2].why


ADMIN_THEN_ANYONE = (
    {
        "name": "admin",
        "match": {"paths": [{"prefix": "/admin/"}]},
        "allow": {"roles_any": ["admin"]},
    },
    {"name": "public", "match": {"paths": [{"prefix": "/public/"}]}, "allow": "anonymous"},
    {"name": "signed-in", "allow": "authenticated"},
)


@pytest.mark.parametrize(
    "path", ["/public/..;/admin/users", "/public/.;/../admin/users", "/public/..%3B/admin/users"]
)
def test_a_dot_segment_with_parameters_is_a_bad_request(path: str) -> None:
    decision = decide(policies(*ADMIN_THEN_ANYONE), None, request(path))
    assert (decision.outcome, decision.reason) == (Outcome.FORBIDDEN, Reason.BAD_REQUEST)


@pytest.mark.parametrize("path", ["/admin;x/users", "/admin;/users", "/admin%3Bjsessionid=1/users"])
def test_parameters_on_a_segment_cannot_dodge_a_rule_a_servlet_container_would_apply(
    path: str,
) -> None:
    # A Servlet container reads `/admin;x/users` as /admin/users: the admin rule must decide.
    decision = decide(policies(*ADMIN_THEN_ANYONE), ALICE, request(path))
    assert not decision.allowed
    assert (decision.reason, decision.rule) == (Reason.MISSING_ROLE, "admin")


@pytest.mark.parametrize("path", ["/public/%%32e%%32e/admin/users", "/public;x/%%32f"])
def test_double_encoding_without_percent_25_is_a_bad_request(path: str) -> None:
    # `%%32e` is `%2e` after one decoding and `.` after two: never an internal error.
    decision = decide(policies(*ADMIN_THEN_ANYONE), None, request(path))
    assert (decision.outcome, decision.reason) == (Outcome.FORBIDDEN, Reason.BAD_REQUEST)


def test_a_request_with_parameters_is_allowed_only_when_both_readings_are_allowed() -> None:
    rules = policies(*ADMIN_THEN_ANYONE)
    assert decide(rules, ALICE, request("/api/orders;jsessionid=1")).allowed
    assert decide(rules, None, request("/public/docs;v=2/index.html")).allowed
    # As sent, `/public;x/docs` is under no anonymous rule; cut, it is. Both must allow.
    assert not decide(rules, None, request("/public;x/docs")).allowed


@pytest.mark.parametrize(
    "host",
    [
        "admin.example.com.",
        "ADMIN.example.com.",
        "admin.example.com.:443",
        "Admin.Example.Com:8443",
        "admin.example.com:",
    ],
)
def test_a_host_scoped_deny_rule_holds_for_every_spelling_of_the_host(host: str) -> None:
    rules = policies(
        {"name": "no-admin-host", "match": {"hosts": ["admin.example.com"]}, "deny": True},
        {"name": "anyone", "allow": "anonymous"},
    )
    decision = decide(rules, None, request(host=host))
    assert (decision.outcome, decision.rule) == (Outcome.FORBIDDEN, "no-admin-host")


def test_a_request_without_a_host_is_a_bad_request_where_rules_are_host_scoped() -> None:
    # No Host at all must not skip a host-scoped deny rule and fall through to an allow.
    rules = policies(
        {"name": "no-admin-host", "match": {"hosts": ["admin.example.com"]}, "deny": True},
        {"name": "anyone", "allow": "anonymous"},
    )
    decision = decide(rules, None, request(host=""))
    assert (decision.outcome, decision.reason) == (Outcome.FORBIDDEN, Reason.BAD_REQUEST)


def test_a_request_without_a_host_is_decided_where_no_rule_is_host_scoped() -> None:
    rules = policies({"name": "anyone", "allow": "anonymous"})
    assert decide(rules, None, request(host="")).allowed


def test_rule_hosts_are_canonical_at_load_so_any_spelling_in_config_matches() -> None:
    rules = policies(
        {"name": "admin-host", "match": {"hosts": ["Admin.Example.COM."]}, "deny": True},
        {"name": "v6", "match": {"hosts": ["[0:0::1]"]}, "deny": True},
        {"name": "anyone", "allow": "anonymous"},
    )
    assert decide(rules, None, request(host="admin.example.com")).rule == "admin-host"
    assert decide(rules, None, request(host="[::1]:8443")).rule == "v6"
    assert decide(rules, None, request(host="[0000::0001]")).rule == "v6"


@pytest.mark.parametrize(
    "host",
    ["admin.example.com..", "admin..example.com", "admin.example.com:x", "admin example.com",
     "admin.example.com\x00.evil", "[::1", "[::1]x", "::1", "adm\u212ain.example.com", "a@b",
     ":80"],
)  # fmt: skip
def test_an_unreadable_host_is_a_bad_request(host: str) -> None:
    rules = policies(
        {"name": "no-admin-host", "match": {"hosts": ["admin.example.com"]}, "deny": True},
        {"name": "anyone", "allow": "anonymous"},
    )
    decision = decide(rules, None, request(host=host))
    assert (decision.outcome, decision.reason) == (Outcome.FORBIDDEN, Reason.BAD_REQUEST)


def test_explain_shows_the_reading_with_parameters_cut_and_the_rule_that_decided_it() -> None:
    trace = Trace()
    decision = policies(*ADMIN_THEN_ANYONE).authorize(request("/admin;x/users"), ALICE, trace)
    assert (decision.reason, decision.rule) == (Reason.MISSING_ROLE, "admin")
    names = [rule.rule for rule in trace.rules]
    assert "(read as /admin/users)" in names
    assert trace.rules[-1] == RuleTrace("admin", True, decision.message, decided=True)


def test_a_repeated_request_is_decided_again_by_its_identity_and_conditions() -> None:
    # Which rules apply to a method, host and path is kept between requests; who the caller
    # is and what a `when:` sees are not.
    rules = policies(
        {
            "name": "batch-only",
            "match": {"paths": [{"prefix": "/api/"}]},
            "allow": {"roles_any": ["internal"]},
            "when": "identity.principal == 'svc:batch'",
        },
        {
            "name": "readers",
            "match": {"paths": [{"prefix": "/api/"}]},
            "allow": {"roles_any": ["reader"]},
        },
        {"name": "never-reached", "match": {}, "deny": True},
    )
    for _ in range(2):
        assert (decide(rules, BATCH).rule, decide(rules, BATCH).allowed) == ("batch-only", True)
        assert (decide(rules, ALICE).rule, decide(rules, ALICE).allowed) == ("readers", True)
        assert decide(rules, None).reason is Reason.AUTHENTICATION_REQUIRED


def test_long_paths_are_decided_without_filling_the_rule_caches() -> None:
    # The caches keep at most thousands of entries: each must stay small, so a long path
    # (up to request_limits.max_header_bytes) is worked out afresh every time.
    rules = policies(
        {"name": "api", "match": {"paths": [{"prefix": "/api/"}]}, "allow": "anonymous"}
    )
    policy = rules.compiled["default"]
    cached = policy._cached_applicable.cache_info().currsize
    paths = canonical_cache.path_cache_size()
    long_path = "/api/" + "a" * 10_000

    decisions = [decide(rules, None, request(path=long_path)) for _ in range(2)]

    assert [d.allowed for d in decisions] == [True, True]
    assert policy._cached_applicable.cache_info().currsize == cached
    assert canonical_cache.path_cache_size() == paths
