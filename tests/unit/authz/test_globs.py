from __future__ import annotations

import pytest

from authz_service.authz.globs import compile_glob


@pytest.mark.parametrize(
    ("pattern", "text", "matches"),
    [
        ("/reports/*", "/reports/q1", True),
        ("/reports/*", "/reports/q1/details", False),
        ("/reports/**", "/reports/q1/details", True),
        ("/reports/**", "/reports/", True),
        ("/files/?.txt", "/files/a.txt", True),
        ("/files/?.txt", "/files//.txt", False),
        ("/a.b", "/aXb", False),
        ("/v[1]", "/v[1]", True),
    ],
)
def test_path_globs_treat_slash_as_a_separator(pattern: str, text: str, matches: bool) -> None:
    assert bool(compile_glob(pattern, slash_is_special=True).fullmatch(text)) is matches


@pytest.mark.parametrize(
    ("pattern", "text", "matches"),
    [
        ("spiffe://prod.example/ns/*/sa/*", "spiffe://prod.example/ns/billing/sa/batch", True),
        ("spiffe://prod.example/*", "spiffe://prod.example/ns/a/sa/b", True),
        ("spiffe://prod.example/*", "spiffe://staging.example/ns/a", False),
        ("svc:*", "svc:billing", True),
        ("svc:*", "user:svc:billing", False),
    ],
)
def test_principal_globs_let_star_cross_slashes(pattern: str, text: str, matches: bool) -> None:
    assert bool(compile_glob(pattern).fullmatch(text)) is matches


def test_host_globs_can_ignore_case() -> None:
    pattern = compile_glob("*.Example.com", ignore_case=True)
    assert pattern.fullmatch("api.example.COM")
    assert not pattern.fullmatch("example.com")
    assert not pattern.fullmatch("api.example.com.evil.net")
