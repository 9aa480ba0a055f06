"""Deciding on method overrides: a request that claims another method (by header or `_method`
query parameter) is allowed only if the real method and every claimed one are allowed."""

from __future__ import annotations

from typing import Any

import pytest

from authz_service.authz.method_overrides import (
    MethodOverrides,
    UnreadableOverride,
    decide_with_overrides,
)
from authz_service.authz.rbac import PolicySet
from authz_service.decisions import (
    AuthMethod,
    Decision,
    Identity,
    Outcome,
    Reason,
    RequestAttributes,
)
from authz_service.schema import MethodOverrideSettings
from tests.support.authz_config import config_from

READER = Identity(principal="rita", method=AuthMethod.JWT, roles=frozenset({"reader"}))
EDITOR = Identity(principal="eddie", method=AuthMethod.JWT, roles=frozenset({"editor"}))

RULES = [
    {"name": "docs", "match": {"methods": ["GET"], "paths": [{"prefix": "/docs/"}]},
     "allow": "anonymous"},
    {"name": "writes", "match": {"methods": ["POST", "PUT", "PATCH", "DELETE"],
     "paths": [{"prefix": "/api/"}]}, "allow": {"roles_any": ["editor"]}},
    {"name": "reads", "match": {"methods": ["GET"], "paths": [{"prefix": "/api/"}]},
     "allow": "authenticated"},
]  # fmt: skip
CONFIG = config_from({"policies": {"default": {"rules": RULES}}})
POLICIES = PolicySet(CONFIG.policies, CONFIG.policy_selection)


def request(path: str = "/api/orders/7", method: str = "GET", **headers: str) -> RequestAttributes:
    return RequestAttributes(
        method, "api.example", path, headers={k.replace("_", "-"): v for k, v in headers.items()}
    )


def decide(
    req: RequestAttributes, identity: Identity | None, settings: dict[str, Any] | None = None
) -> Decision:
    overrides = MethodOverrides(MethodOverrideSettings.model_validate(settings or {}))
    first = POLICIES.authorize(req, identity)
    return decide_with_overrides(
        overrides, req, first, lambda other: POLICIES.authorize(other, identity)
    )


@pytest.mark.parametrize("header", ["x_http_method_override", "x_http_method", "x_method_override"])
def test_a_readers_get_overridden_to_delete_is_denied(header: str) -> None:
    decision = decide(request(**{header: "DELETE"}), READER)

    assert decision.outcome is Outcome.FORBIDDEN
    assert decision.reason is Reason.MISSING_ROLE
    assert "DELETE" in decision.message


@pytest.mark.parametrize(
    "path",
    [
        "/api/orders/7?_method=DELETE",
        "/api/orders/7?page=1&_method=delete",
        "/api/orders/7?page=1;_method=PUT",
        "/api/orders/7?%5Fmethod=PATCH",
        "/api/orders/7?_method=GET&_method=DELETE",
    ],
)
def test_a_readers_get_overridden_by_the_query_parameter_is_denied(path: str) -> None:
    decision = decide(request(path), READER)

    assert decision.reason is Reason.MISSING_ROLE


def test_an_override_every_method_of_which_is_allowed_keeps_the_decision() -> None:
    req = request(method="POST", x_http_method_override="PATCH")
    assert decide(req, EDITOR) == POLICIES.authorize(req, EDITOR)
    assert decide(req, EDITOR).allowed


def test_an_override_to_the_real_method_changes_nothing() -> None:
    assert decide(request(x_http_method_override="get"), READER).allowed


def test_an_anonymous_read_overridden_to_a_write_is_denied() -> None:
    decision = decide(request("/docs/a", x_http_method_override="PUT"), None)

    assert decision.outcome is Outcome.FORBIDDEN
    assert decision.reason is Reason.NO_MATCHING_RULE


def test_a_repeated_override_header_claims_each_of_its_methods() -> None:
    assert not decide(request(x_http_method_override="GET, DELETE"), READER).allowed


def test_an_override_that_is_not_a_method_is_a_bad_request() -> None:
    decision = decide(request(x_http_method_override="DELETE /admin"), EDITOR)

    assert decision.outcome is Outcome.FORBIDDEN
    assert decision.reason is Reason.BAD_REQUEST


def test_an_empty_override_is_no_override() -> None:
    assert decide(request(x_http_method_override=" "), READER).allowed


def test_a_denial_stands_whatever_the_override_says() -> None:
    req = request(method="DELETE", x_http_method_override="GET")
    assert decide(req, READER) == POLICIES.authorize(req, READER)


def test_configured_names_replace_the_defaults() -> None:
    settings = {"headers": ["X-Tunnel"], "query_parameters": ["verb"]}

    assert not decide(request(x_tunnel="DELETE"), READER, settings).allowed
    assert not decide(request("/api/x?verb=DELETE"), READER, settings).allowed
    assert decide(request(x_http_method_override="DELETE"), READER, settings).allowed


def test_a_request_without_overrides_claims_nothing() -> None:
    overrides = MethodOverrides()

    assert overrides.claimed_methods(request("/api/x?page=2&sort=name")) == ()
    assert overrides.claimed_methods(request("/api/x")) == ()


def test_unreadable_query_values_are_refused_too() -> None:
    with pytest.raises(UnreadableOverride):
        MethodOverrides().claimed_methods(request("/api/x?_method=DEL%0AETE"))


def test_query_parameter_names_are_checked_in_the_config() -> None:
    with pytest.raises(ValueError, match="query parameter"):
        MethodOverrideSettings.model_validate({"query_parameters": ["a&b"]})
