"""Alternative spellings of a protected path, through the real Envoy and the real service.

Envoy's `normalize_path`/`merge_slashes`/`path_with_escaped_slashes_action: REJECT_REQUEST`
and the service's own canonicalisation together must never let a caller without the admin
role reach an admin path: each request is refused, or the upstream receives a path that is
not an admin path under any reading (decoded, case-folded, `;params` cut, ...).
Requests are sent with http.client so that the raw path goes on the wire unchanged (httpx
resolves dot segments itself).
"""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.e2e.conftest import Stack, running_stack, trusting
from tests.support.path_spellings import reaches

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


@pytest.fixture(scope="module")
def paths_stack(tmp_path_factory: pytest.TempPathFactory, envoy_available: str) -> Iterator[Stack]:
    with running_stack(tmp_path_factory.mktemp("paths")) as stack:
        yield stack


def send(stack: Stack, raw_path: str, token: str) -> Seen:
    url = urlsplit(stack.public_url)
    connection = http.client.HTTPSConnection(
        url.hostname or "127.0.0.1", url.port, context=trusting(stack.ca_file), timeout=10
    )
    try:
        connection.putrequest("GET", raw_path, skip_accept_encoding=True)
        connection.putheader("authorization", f"Bearer {token}")
        connection.endheaders()
        response = connection.getresponse()
        body = response.read()
        upstream_path = None
        if response.status == 200:
            echoed: dict[str, Any] = json.loads(body)
            upstream_path = echoed["path"]
        return Seen(response.status, response.getheader("x-authz-reason") or "", upstream_path)
    finally:
        connection.close()


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
