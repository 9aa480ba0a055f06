from __future__ import annotations

import pytest
from pydantic import ValidationError

from authz_service.authz.hosts import AmbiguousHost, canonical_host
from authz_service.schema import canonical_host_pattern
from tests.support.authz_config import config_from


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("admin.example.com", "admin.example.com"),
        ("Admin.Example.COM", "admin.example.com"),
        ("admin.example.com.", "admin.example.com"),
        ("admin.example.com:443", "admin.example.com"),
        ("ADMIN.example.com.:8443", "admin.example.com"),
        ("admin.example.com:", "admin.example.com"),
        ("127.0.0.1:8080", "127.0.0.1"),
        ("[::1]", "[::1]"),
        ("[::1]:8443", "[::1]"),
        ("[0:0:0:0:0:0:0:1]:80", "[::1]"),
        ("[FE80::A]", "[fe80::a]"),
        ("svc_name.internal", "svc_name.internal"),
        ("", ""),
    ],
)
def test_every_spelling_of_a_host_has_one_canonical_form(raw: str, expected: str) -> None:
    assert canonical_host(raw) == expected


@pytest.mark.parametrize(
    "raw",
    ["a..b", ".a", "a.b..", "a:b", "a:1:2", "::1", "[::1", "[::1]x", "[::1]:x", "[fe80::1%25e]",
     "[1.2.3.4]", "a b", "a\x00b", "a@b", "a/b", "é.example", "\u212a.example", ":80", "."],
)  # fmt: skip
def test_a_host_that_is_no_host_name_is_refused(raw: str) -> None:
    with pytest.raises(AmbiguousHost):
        canonical_host(raw)


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [("Admin.Example.COM.", "admin.example.com"), ("*.Example.com", "*.example.com"),
     ("[0::1]", "[::1]"), ("api-?.internal", "api-?.internal"), ("*", "*")],
)  # fmt: skip
def test_rule_hosts_are_stored_in_the_canonical_form(pattern: str, expected: str) -> None:
    assert canonical_host_pattern(pattern) == expected


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        ("admin.example.com:443", "hosts are matched without the port"),
        ("[::1]:443", "hosts are matched without the port"),
        ("::1", "hosts are matched without the port"),
        ("bücher.example", r"ASCII \(punycode\)"),
        ("admin..example.com", "is not a host name"),
        ("admin/x", "is not a host name"),
    ],
)
def test_a_rule_host_that_could_never_match_is_a_config_error(pattern: str, message: str) -> None:
    rule = {"name": "r", "match": {"hosts": [pattern]}, "allow": "anonymous"}
    with pytest.raises(ValidationError, match=message):
        config_from({"policies": {"default": {"rules": [rule]}}})
