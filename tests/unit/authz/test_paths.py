from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from authz_service.authz.paths import AmbiguousPath, canonical_path, without_parameters


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("/a/b", "/a/b"),
        ("/a/./b", "/a/b"),
        ("/a/b/../c", "/a/c"),
        ("/../../etc/passwd", "/etc/passwd"),
        ("//admin//users", "/admin/users"),
        ("/admin/", "/admin/"),
        ("", "/"),
        ("admin", "/admin"),
        ("/a%20b", "/a b"),
        ("/caf%C3%A9", "/café"),
        ("/files/report%2epdf", "/files/report.pdf"),  # an encoded dot that is no dot segment
        ("/files/%2e%2e%2e", "/files/..."),
    ],
)
def test_canonical_path_resolves_dot_segments_decodes_and_merges_slashes(
    raw: str, expected: str
) -> None:
    assert canonical_path(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("/admin?x=/../public", "/admin"),
        ("/admin#/../public", "/admin"),
        ("/a/../b?c#d", "/b"),
    ],
)
def test_canonical_path_strips_query_and_fragment_before_resolving(raw: str, expected: str) -> None:
    assert canonical_path(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        "/public%2f..%2fadmin",
        "/public%2F..%2Fadmin",
        "/public%5c..%5cadmin",
        "/public\\..\\admin",
        "/admin%00.json",
        "/admin%0a",
        "/admin\x01",
        "/admin%7f",
        # Double encoding: one more decode (a second proxy, a framework) would see `/../`.
        "/public/%252e%252e/admin",
        "/public%252fadmin",
        # ...and without `%25`: `%%32e` decodes to `%2e`, which decodes to `.`.
        "/public/%%32e%%32e/admin",
        "/public/%%32E%%32E/admin",
        "/a/%%32f",
        "/%%341dmin",
    ],
)
def test_canonical_path_rejects_encoded_separators_controls_and_double_encoding(
    raw: str,
) -> None:
    with pytest.raises(AmbiguousPath):
        canonical_path(raw)


@pytest.mark.parametrize(
    "raw", ["/public/%2e%2e/admin", "/public/%2E%2E/admin", "/public/.%2e/admin", "/a/%2e/b"]
)
def test_canonical_path_rejects_encoded_dot_segments(raw: str) -> None:
    # nginx passes $request_uri through undecoded: its upstream may read /public/%2e%2e/admin
    # as under /public/ or under /admin/, whatever we decide. Refuse rather than guess.
    with pytest.raises(AmbiguousPath, match="encoded dot segments"):
        canonical_path(raw)


@pytest.mark.parametrize("raw", ["/%ff", "/%c3%28", "/a%e2%82"])
def test_canonical_path_rejects_percent_encoding_that_is_not_utf8(raw: str) -> None:
    with pytest.raises(AmbiguousPath, match="UTF-8"):
        canonical_path(raw)


def test_canonical_path_keeps_an_encoded_question_mark_inside_the_path() -> None:
    # `%3F` is part of the path, not the start of a query: it must not be cut off later.
    assert canonical_path("/files/what%3Fnow") == "/files/what%3Fnow"
    assert canonical_path("/files/a%23b") == "/files/a%23b"


_FRAGMENTS = st.sampled_from(
    [
        "/", "//", ".", "..", "%2e", "%2E", "%2e%2e", "%2f", "%5c", "%00", "%25", "%3f", "%3F",
        "%23", "?", "#", "\\", "a", "admin", "é", "%c3%a9", "%ff", "%", "%2", " ", "\x00", ";",
    ]
)  # fmt: skip
_PATHS = st.one_of(
    st.lists(_FRAGMENTS, max_size=12).map("".join),
    st.text(max_size=40),
)


@given(_PATHS)
def test_canonical_path_property_only_ambiguous_path_escapes_and_output_is_canonical(
    raw: str,
) -> None:
    try:
        path = canonical_path(raw)
    except AmbiguousPath:
        return
    assert path.startswith("/")
    assert "/../" not in path + "/"
    assert "/./" not in path + "/"
    assert "//" not in path
    assert "?" not in path
    assert "#" not in path
    assert canonical_path(path) == path
    # No segment is a dot segment once a Servlet container cuts its `;params`.
    assert all(segment.partition(";")[0] not in (".", "..") for segment in path.split("/"))


@pytest.mark.parametrize(
    "raw",
    [
        "/public/..;/admin",
        "/public/..;x=1/admin",
        "/public/.;/admin",
        "/public/.;jsessionid=1/admin",
        "/public/%2e%2e;/admin",
        "/public/%2E%2E;x/admin",
        "/public/..%3b/admin",
        "/public/..%3B/admin",
        "/public/..;",
    ],
)
def test_canonical_path_rejects_dot_segments_with_parameters(raw: str) -> None:
    # Tomcat, Jetty and Spring cut `;params` before resolving dot segments: `/public/..;/admin`
    # is `/admin` to them and a segment named `..;` under /public/ to us. Refuse, don't guess.
    with pytest.raises(AmbiguousPath, match="dot segments with parameters"):
        canonical_path(raw)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("/api/orders;jsessionid=1", "/api/orders;jsessionid=1"),
        ("/admin;x/users", "/admin;x/users"),
        ("/files/..x;y", "/files/..x;y"),
        ("/files/;/x", "/files/;/x"),
    ],
)
def test_canonical_path_keeps_parameters_on_ordinary_segments(raw: str, expected: str) -> None:
    assert canonical_path(raw) == expected


@pytest.mark.parametrize(
    ("canonical", "expected"),
    [("/admin;x/users", "/admin/users"), ("/a/;x/b", "/a/b"), ("/a/b;x/", "/a/b/"),
     ("/a;x", "/a"), ("/;x", "/"), ("/a/;x", "/a/"),
     ("/files/what%3Fnow;v=1", "/files/what%3Fnow")],
)  # fmt: skip
def test_without_parameters_cuts_them_from_every_segment(canonical: str, expected: str) -> None:
    assert without_parameters(canonical) == expected
