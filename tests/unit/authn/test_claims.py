from __future__ import annotations

from typing import Any

import pytest

from authz_service.authn.claims import MAX_HEADER_VALUE, as_strings, claim_at, collect, header_safe

CLAIMS: dict[str, Any] = {
    "sub": "alice",
    "realm_access": {"roles": ["admin", "reader"]},
    "resource_access": {"demo-api": {"roles": ["editor"]}},
    "https://example.com/claims": {"tier": "gold"},
    "org": {"team.name": "payments"},
    "scope": "openid reports:read  reports:write",
    "scp": ["a", 1, "b"],
}


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("sub", "alice"),
        ("realm_access.roles", ["admin", "reader"]),
        ("resource_access.demo-api.roles", ["editor"]),
        ("https://example.com/claims", {"tier": "gold"}),
        ("https://example.com/claims.tier", "gold"),
        ("org.team.name", "payments"),
        ("realm_access.missing", None),
        ("sub.deeper", None),
        ("nothing", None),
    ],
)
def test_claim_at_follows_dotted_paths_and_keys_with_dots(path: str, value: Any) -> None:
    assert claim_at(CLAIMS, path) == value


def test_scopes_are_split_on_whitespace_and_non_strings_dropped() -> None:
    assert as_strings(CLAIMS["scope"]) == ["openid", "reports:read", "reports:write"]
    assert as_strings(CLAIMS["scp"]) == ["a", "b"]
    assert as_strings(None) == []
    assert as_strings({"a": 1}) == []


def test_collect_merges_every_configured_path() -> None:
    roles = collect(CLAIMS, ["realm_access.roles", "resource_access.demo-api.roles", "missing"])
    assert roles == frozenset({"admin", "reader", "editor"})


@pytest.mark.parametrize(
    ("value", "rendered"),
    [
        ("alice\r\nx-admin: true", "alicex-admin: true"),
        ("tab\there\x00\x7f", "tabhere"),
        (["a", "b\n"], "a,b"),
        (True, "true"),
        (None, ""),
        (42, "42"),
    ],
)
def test_header_safe_strips_control_characters(value: Any, rendered: str) -> None:
    assert header_safe(value) == rendered


def test_header_safe_bounds_the_length() -> None:
    assert len(header_safe("x" * (MAX_HEADER_VALUE * 3))) == MAX_HEADER_VALUE
