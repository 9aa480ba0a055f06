"""Alternative spellings of a protected path or host, through the real Envoy and service.

Envoy's `normalize_path`/`merge_slashes`/`path_with_escaped_slashes_action: REJECT_REQUEST`
and the service's own canonicalisation together must never let a caller without the admin
role reach an admin path, nor an anonymous caller anything but /public/: each request is
refused, or the upstream receives a path that is allowed under every reading (decoded,
case-folded, `;params` cut, ...). A rule scoped to a host holds for every spelling of the
host, over HTTP/1.1 and HTTP/2. Requests go on the wire as written (tests/support/raw_http.py):
httpx would resolve dot segments itself.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.e2e.conftest import Stack, running_stack
from tests.support.path_spellings import reaches, spellings
from tests.support.raw_http import send_raw

pytestmark = pytest.mark.envoy

ADMIN_SPELLINGS = [
    "/admin/../admin",
    "/admin/../admin/users",
    "/public/../admin/users",
    "/public/%2e%2e/admin/users",
    "/public/%2E%2E/admin/users",
    "/public/.%2e/admin/users",
    "/public/%2e%2e%2fadmin/users",
    "/public/..%2Fadmin/users",
    "/admin%2Fusers",
    "/admin%2fusers",
    "//admin//users",
    "///admin/users",
    "/public//../admin/users",
    "/public\\..\\admin\\users",
    "/public/..\\admin/users",
    "/admin%5cusers",
    "/ADMIN/users",
    "/Admin/users",
    "/%61dmin/users",
    "/%41DMIN/users",
    "/admin;x/users",
    "/admin;/users",
    "/public/..;/admin/users",
    "/public/%2e%2e;/admin/users",
    "/public/%2E%2E;x=1/admin/users",
    "/public/.%2e;/admin/users",
    "/public/..%3B/admin/users",
    "/public/x;y/../../admin/users",
    "/admin;jsessionid=1/users",
    "/admin%3Bx/users",
    "/admin%00/users",
    "/admin%00",
    "/admin.",
    "/admin./users",
    "/admin../users",
    "/admin/users.",
    "/admin/./users",
    "/public/%252e%252e/admin/users",
    "/public/%u002e%u002e/admin/users",
    "/admin#/users",
    "/admin?/users",
    "/public/x/../../admin/users",
    "/./admin/users",
    "/admin%20/users",
    "/admin%09/users",
]


@dataclass
class Seen:
    status: int
    reason: str  # x-authz-reason, when the service denied
    upstream_path: str | None  # what the echo upstream received, when it answered


# Ahead of the public rules: nothing on this host, whoever asks.
ADMIN_HOST_RULE = {"name": "no-admin-host", "match": {"hosts": ["admin.example.com"]}, "deny": True}


def with_admin_host_rule(config: dict[str, Any]) -> None:
    config["policies"]["public"]["rules"].insert(0, ADMIN_HOST_RULE)


@pytest.fixture(scope="module")
def paths_stack(tmp_path_factory: pytest.TempPathFactory, envoy_available: str) -> Iterator[Stack]:
    with running_stack(tmp_path_factory.mktemp("paths"), edit_config=with_admin_host_rule) as stack:
        yield stack


def send(
    stack: Stack, raw_path: str, token: str | None, *, host: str | None = None, http2: bool = False
) -> Seen:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    if host is not None:
        headers["host"] = host
    response = send_raw(
        stack.public_url, raw_path, headers=headers, ca_file=stack.ca_file, http2=http2
    )
    upstream_path = None
    if response.status == 200:
        echoed: dict[str, Any] = json.loads(response.body)
        upstream_path = echoed["path"]
    return Seen(response.status, response.headers.get("x-authz-reason", ""), upstream_path)


def test_the_admin_role_reaches_the_admin_path_as_a_control(paths_stack: Stack) -> None:
    token = paths_stack.idp.mint("carol", roles=["admin"])
    seen = send(paths_stack, "/admin/users", token)
    assert (seen.status, seen.upstream_path) == (200, "/admin/users")
    # ...and one of the alternative spellings arrives canonical.
    seen = send(paths_stack, "/public/%2e%2e/admin//users", token)
    assert (seen.status, seen.upstream_path) == (200, "/admin/users")


def test_the_admin_path_is_refused_without_the_role_as_a_control(paths_stack: Stack) -> None:
    token = paths_stack.idp.mint("alice", roles=["editor"])
    seen = send(paths_stack, "/admin/users", token)
    assert (seen.status, seen.reason) == (403, "missing_role")


@pytest.mark.parametrize("raw_path", ADMIN_SPELLINGS)
def test_no_spelling_of_an_admin_path_reaches_the_upstream_without_the_admin_role(
    paths_stack: Stack, raw_path: str
) -> None:
    token = paths_stack.idp.mint("alice", roles=["editor"])
    seen = send(paths_stack, raw_path, token)
    if seen.status == 200:
        assert seen.upstream_path is not None
        assert not reaches(seen.upstream_path, "/admin"), (raw_path, seen)
    else:
        # Refused by Envoy (400 for escaped slashes), by the service (403/401), or not found.
        assert seen.status in {400, 401, 403, 404}, (raw_path, seen)


ANONYMOUS_SPELLINGS = [
    "/public/..;/api/orders",
    "/public/%2e%2e;/api/orders",
    "/public/%2E%2E;x=1/api/orders",
    "/public/.%2e;/api/orders",
    "/public/..%3B/api/orders",
    "/public/..%3b/api/orders",
    "/public/.;/../api/orders",
    "/public;x/../api/orders",
    "/public/x;y/../../api/orders",
    "/public/..%2fapi/orders",
    "/public/%2e%2e/api/orders",
    "/public/%%32e%%32e/api/orders",
]


@pytest.mark.parametrize("raw_path", ANONYMOUS_SPELLINGS)
def test_no_spelling_with_a_public_reading_reaches_anything_else_without_credentials(
    paths_stack: Stack, raw_path: str
) -> None:
    # Each has a reading under /public/ (open to anyone) and one under /api/ (not).
    seen = send(paths_stack, raw_path, None)
    if seen.status == 200:
        assert seen.upstream_path is not None
        readings = spellings(seen.upstream_path)
        assert all(reading.startswith("/public/") for reading in readings), (raw_path, seen)
    else:
        assert seen.status in {400, 401, 403, 404}, (raw_path, seen)


def test_a_dot_segment_with_parameters_left_by_envoy_is_refused_as_a_bad_request(
    paths_stack: Stack,
) -> None:
    # Envoy decodes %2e%2e but leaves `..;` for the next server to read as `..`.
    seen = send(paths_stack, "/public/%2e%2e;/api/orders", None)
    assert (seen.status, seen.reason) == (403, "bad_request")


def test_anonymous_public_paths_stay_open_as_a_control(paths_stack: Stack) -> None:
    seen = send(paths_stack, "/public/readme;v=2", None, host="www.example.com")
    assert (seen.status, seen.upstream_path) == (200, "/public/readme;v=2")


ADMIN_HOST_SPELLINGS = [
    "admin.example.com",
    "admin.example.com.",
    "ADMIN.example.com.",
    "Admin.Example.Com",
    "admin.example.com:443",
    "admin.example.com.:443",
    "Admin.Example.Com.:8443",
]


@pytest.mark.parametrize("http2", [False, True], ids=["http1.1", "http2"])
@pytest.mark.parametrize("host", ADMIN_HOST_SPELLINGS)
def test_a_host_scoped_rule_holds_for_every_spelling_of_the_host(
    paths_stack: Stack, host: str, http2: bool
) -> None:
    seen = send(paths_stack, "/public/readme", None, host=host, http2=http2)
    assert (seen.status, seen.reason) == (403, "denied_by_rule"), (host, seen)


@pytest.mark.parametrize("http2", [False, True], ids=["http1.1", "http2"])
def test_another_host_is_not_caught_by_the_host_scoped_rule_as_a_control(
    paths_stack: Stack, http2: bool
) -> None:
    seen = send(paths_stack, "/public/readme", None, host="www.example.com.", http2=http2)
    assert (seen.status, seen.upstream_path) == (200, "/public/readme")


@pytest.mark.parametrize("http2", [False, True], ids=["http1.1", "http2"])
def test_envoy_forwards_the_host_without_its_trailing_dot(paths_stack: Stack, http2: bool) -> None:
    # strip_trailing_host_dot: the upstream and its virtual hosts see one spelling.
    response = send_raw(
        paths_stack.public_url,
        "/public/readme",
        headers={"host": "www.example.com."},
        ca_file=paths_stack.ca_file,
        http2=http2,
    )
    assert response.status == 200
    assert json.loads(response.body)["headers"]["host"] == "www.example.com"
