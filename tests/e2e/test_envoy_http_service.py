"""The real Envoy in ext_authz `http_service` mode, on the HTTP render of envoy/envoy.yaml
(`python -m tools.render_envoy --transport http`), calling the service's HTTP check endpoint
on aiohttp and on granian. What is the same as over gRPC is pinned by the parity modules
(test_ext_authz_through_envoy.py, test_what_reaches_the_upstream.py run on both transports);
this module pins what the HTTP mode does its own way: one mount per listener, metadata from
answer headers, the client headers Envoy lets through, the check port actually used.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import Stack, running_stack
from tests.e2e.gateway import RateLimitSpy, access_log

pytestmark = pytest.mark.envoy


@pytest.fixture(scope="module", params=["aiohttp", "granian"])
def http_gateway(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, envoy_available: str
) -> Iterator[tuple[Stack, RateLimitSpy]]:
    """The HTTP-transport stack on either server; a RateLimitSpy answers ShouldRateLimit (still
    gRPC) and records the descriptors Envoy built from the check's answer headers."""
    spies: list[RateLimitSpy] = []

    def front(authz_port: int) -> int:
        spies.append(RateLimitSpy(authz_port).start())
        return spies[0].port

    workdir = tmp_path_factory.mktemp(f"envoy-http-{request.param}")
    try:
        with running_stack(
            workdir, front=front, transport="http", http_server=request.param
        ) as stack:
            yield stack, spies[0]
    finally:
        for spy in spies:
            spy.stop()


@pytest.fixture
def stack(http_gateway: tuple[Stack, RateLimitSpy]) -> Stack:
    return http_gateway[0]


@pytest.fixture
def spy(http_gateway: tuple[Stack, RateLimitSpy]) -> RateLimitSpy:
    http_gateway[1].reset()
    return http_gateway[1]


def request(
    stack: Stack,
    method: str,
    path: str,
    token: str | None = None,
    headers: dict[str, str] | None = None,
    *,
    internal: bool = False,
) -> httpx.Response:
    headers = dict(headers or {})
    if token is not None:
        headers["authorization"] = f"Bearer {token}"
    base = stack.internal_url if internal else stack.public_url
    with stack.client() as client:
        return client.request(method, base + path, headers=headers)


def wait_for_access_log(stack: Stack, request_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 10.0
    while time.monotonic() < deadline:  # Envoy flushes its access log on its own timer
        for entry in access_log(stack.envoy.log()):
            if entry.get("request_id") == request_id:
                return entry
        time.sleep(0.05)  # poll interval of the wait on the condition above
    raise AssertionError(f"no access-log line for {request_id}:\n{stack.logs()}")


def test_checks_go_to_the_http_endpoint_not_to_grpc_check(stack: Stack, spy: RateLimitSpy) -> None:
    name = f"user-{uuid.uuid4().hex[:8]}"
    token = stack.idp.mint(name, roles=["reader"])

    response = request(stack, "GET", "/api/orders", token)

    assert response.status_code == 200, stack.logs()
    assert response.json()["headers"]["x-user-id"] == name  # decided by the service...
    assert spy.calls  # ...while the gRPC port (the spy) got only the rate-limit call
    assert spy.checks_forwarded == 0


def test_allowed_request_reaches_the_upstream_with_identity_headers(stack: Stack) -> None:
    name = f"user-{uuid.uuid4().hex[:8]}"
    token = stack.idp.mint(name, roles=["editor"], extra_claims={"email": "e@x.example"})
    spoofed = {"x-user-tier": "platinum", "x-user-id": "mallory", "x-user-roles": "admin"}

    response = request(stack, "POST", "/api/orders?draft=1", token, spoofed)

    assert response.status_code == 200, stack.logs()
    seen = response.json()
    assert (seen["method"], seen["path"]) == ("POST", "/api/orders?draft=1")
    headers = seen["headers"]
    assert (headers["x-user-id"], headers["x-user-roles"]) == (name, "editor")
    assert headers["x-user-email"] == "e@x.example"
    # Not in the token: the client's copy is removed, as is the credential (strip_credentials).
    assert "x-user-tier" not in headers
    assert "authorization" not in headers
    assert "x-envoy-auth-headers-to-remove" not in headers


def test_each_listener_asks_with_its_own_policy(stack: Stack) -> None:
    # /envoy/internal: the internal policy lets the service key into /internal/...
    api_key = {"x-api-key": "dev-only-api-key"}
    internal = request(stack, "GET", "/internal/jobs", None, api_key, internal=True)
    # ...which the public listener never routes, and the public policy would not allow.
    token = stack.idp.mint("mallory", roles=["user"])
    refused = request(stack, "GET", "/api/orders", token, internal=True)

    assert internal.status_code == 200, stack.logs()
    assert internal.json()["headers"]["x-user-id"] == "svc:billing-batch"
    assert refused.status_code == 403
    assert refused.headers["x-authz-reason"] == "no_matching_rule"


def test_a_denial_reaches_the_client_with_its_challenge_and_body_only(stack: Stack) -> None:
    response = request(stack, "GET", "/api/orders")

    assert response.status_code == 401, stack.logs()
    assert response.headers["www-authenticate"].startswith('Bearer realm="authz-service"')
    assert response.headers["x-authz-reason"] == "authentication_required"
    assert response.json()["reason"] == "authentication_required"
    # allowed_client_headers: the check server's own headers stay at the gateway.
    assert response.headers.get("server") == "envoy"


def test_the_answer_headers_become_rate_limit_descriptors_and_log_fields(
    stack: Stack, spy: RateLimitSpy
) -> None:
    name = f"user-{uuid.uuid4().hex[:8]}"
    token = stack.idp.mint(name, roles=["editor"], extra_claims={"tier": "gold"})

    response = request(stack, "GET", "/api/orders", token)

    assert response.status_code == 200, stack.logs()
    descriptors = spy.descriptors()
    assert (("user", name),) in descriptors
    assert (("tier", "gold"), ("user", name)) in descriptors
    entry = wait_for_access_log(stack, response.headers["x-request-id"])
    assert (entry["principal"], entry["tier"]) == (name, "gold")


def test_an_anonymous_caller_sends_no_user_descriptor(stack: Stack, spy: RateLimitSpy) -> None:
    response = request(stack, "GET", "/public/readme")

    assert response.status_code == 200, stack.logs()
    assert "x-user-id" not in response.json()["headers"]
    assert not any(key == "user" for d in spy.descriptors() for key, _ in d)
