"""The ratelimit filter of envoy/envoy.yaml through a real Envoy: descriptors, 429, fail open.

Envoy's authz_service cluster points at a RateLimitSpy that forwards Check to the real service
and answers ShouldRateLimit itself, so each test sees the descriptors the route's rate_limits
actions built from the request and from the principal/tier authz_service returned.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import Gateway
from tests.e2e.gateway import access_log

pytestmark = pytest.mark.envoy

CLIENT_IP = (("remote_address", "127.0.0.1"),)


@pytest.fixture
def gw(gateway: Gateway) -> Iterator[Gateway]:
    gateway.spy.reset()
    yield gateway
    gateway.spy.reset()


def call(gw: Gateway, method: str, path: str, token: str | None = None) -> httpx.Response:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    with gw.stack.client() as client:
        return client.request(method, gw.stack.public_url + path, headers=headers)


def log_entry(gw: Gateway, request_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        for entry in access_log(gw.stack.envoy.log()):
            if entry["request_id"] == request_id:
                return entry
        time.sleep(0.05)
    raise AssertionError(f"no access-log line for {request_id}")


def test_an_authenticated_write_sends_all_five_descriptors(gw: Gateway) -> None:
    token = gw.stack.idp.mint("alice", roles=["editor"], extra_claims={"tier": "gold"})

    response = call(gw, "POST", "/api/orders", token)

    assert response.status_code == 200, response.text
    assert [call.domain for call in gw.spy.calls] == ["gateway"]
    assert gw.spy.descriptors() == [
        CLIENT_IP,
        (("user", "alice"),),
        (("tier", "gold"), ("user", "alice")),
        (("method_class", "write"), ("remote_address", "127.0.0.1")),
        (("endpoint", "api"),),
    ]


def test_a_read_has_no_write_descriptor_and_admin_routes_name_their_endpoint(
    gw: Gateway,
) -> None:
    admin = gw.stack.idp.mint("root", roles=["admin"])  # no tier claim

    response = call(gw, "GET", "/admin/users", admin)

    assert response.status_code == 200, response.text
    # No tier: the (tier, user) descriptor is dropped rather than sent half-empty.
    assert gw.spy.descriptors() == [CLIENT_IP, (("user", "root"),), (("endpoint", "admin"),)]


def test_anonymous_callers_are_limited_by_address_only(gw: Gateway) -> None:
    response = call(gw, "GET", "/public/hello")

    assert response.status_code == 200, response.text
    assert gw.spy.descriptors() == [CLIENT_IP]


def test_denied_and_health_requests_never_reach_the_rate_limiter(gw: Gateway) -> None:
    assert call(gw, "GET", "/api/orders").status_code == 401  # ext_authz answers first
    assert call(gw, "GET", "/healthz").status_code == 200
    assert gw.spy.calls == []


def test_responses_carry_draft_03_rate_limit_headers(gw: Gateway) -> None:
    token = gw.stack.idp.mint("alice", roles=["editor"], extra_claims={"tier": "gold"})

    response = call(gw, "GET", "/api/orders", token)

    assert response.status_code == 200
    assert response.headers["x-ratelimit-limit"].startswith("10, 10;w=60")
    assert response.headers["x-ratelimit-remaining"] == "7"
    assert response.headers["x-ratelimit-reset"] == "42"


def test_over_the_limit_is_a_429_and_the_upstream_is_not_called(gw: Gateway) -> None:
    token = gw.stack.idp.mint("bob", roles=["editor"], extra_claims={"tier": "free"})
    gw.spy.answer = "over_limit"
    gw.spy.over_limit_if = lambda descriptors: (("tier", "free"), ("user", "bob")) in descriptors

    limited = call(gw, "GET", "/api/orders", token)
    other = call(gw, "GET", "/api/orders", gw.stack.idp.mint("carol", roles=["editor"]))

    assert limited.status_code == 429
    assert limited.json() == {"error": "rate_limited", "reason": "quota_exceeded"}
    assert limited.headers["x-envoy-ratelimited"] == "true"
    assert limited.headers["x-ratelimit-remaining"] == "0"
    assert limited.headers["x-ratelimit-reset"] == "42"
    assert "version" not in limited.text  # the upstream's echo never came back
    assert other.status_code == 200  # another user's budget is untouched
    entry = log_entry(gw, limited.headers["x-request-id"])
    assert entry["status"] == 429
    assert "RL" in entry["flags"].split(",")
    assert entry["principal"] == "bob"
    assert entry["ratelimit_remaining"] == "0"


def test_rate_limit_service_errors_fail_open(gw: Gateway) -> None:
    """failure_mode_deny: false — unlike authorization, which fails closed."""
    token = gw.stack.idp.mint("alice", roles=["editor"], extra_claims={"tier": "gold"})
    gw.spy.answer = "unavailable"

    response = call(gw, "POST", "/api/orders", token)

    assert response.status_code == 200, response.text
    assert response.json()["headers"]["x-user-id"] == "alice"  # the upstream was called
    assert "x-ratelimit-remaining" not in response.headers
    assert len(gw.spy.calls) == 1
    with httpx.Client(timeout=5) as client:
        stats = client.get(gw.stack.admin_url + "/stats?filter=ratelimit").text
    assert "ratelimit.failure_mode_allowed: 1" in stats or "ratelimit.error: " in stats
