"""docker-compose.yml brought up for real with podman-compose, on locally built images
(docker-compose.no-registry.yml: oidc-provider in Keycloak's place, an OTLP receiver in
Jaeger's), then followed as the README's walk-through does, then taken down."""

from __future__ import annotations

import socket
import ssl
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.containers.podman import build_images, run, wait_until
from tests.support import REPO_ROOT, find_binary

PROJECT = "authz-compose-test"
FILES = ["-f", "docker-compose.yml", "-f", "docker-compose.no-registry.yml"]
GATEWAY = "https://localhost:8443"
TOKEN_URL = "http://localhost:8180/realms/demo/protocol/openid-connect/token"
SPANS_URL = "http://localhost:16686/api/spans"
# Host ports docker-compose.yml publishes.
HOST_PORTS = (8443, 8080, 10001, 8180, 16686, 9090)


def compose(*args: str, timeout: float = 300.0) -> str:
    podman_compose = find_binary("podman-compose")
    return run([podman_compose, "-p", PROJECT, *FILES, *args], timeout=timeout)


def _port_in_use(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _leftovers() -> list[str]:
    label = f"label=io.podman.compose.project={PROJECT}"
    containers = run(["podman", "ps", "-a", "--filter", label, "--format", "{{.Names}}"])
    networks = run(["podman", "network", "ls", "--format", "{{.Name}}"])
    return containers.split() + [n for n in networks.split() if n.startswith(PROJECT)]


@pytest.fixture(scope="module")
def stack() -> Iterator[httpx.Client]:
    for tool in ("podman", "debootstrap", "podman-compose", "node", "npm"):
        find_binary(tool)
    busy = [port for port in HOST_PORTS if _port_in_use(port)]
    assert not busy, f"docker-compose.yml publishes ports already in use here: {busy}"
    build_images("--compose")
    compose("up", "-d")
    client = httpx.Client(
        verify=ssl.create_default_context(cafile=str(REPO_ROOT / "compose" / "certs" / "ca.crt")),
        timeout=10.0,
    )
    try:
        wait_until(lambda: _answers(client), within_s=120, what="the gateway answers /public/")
        yield client
    finally:
        client.close()
        if _leftovers():
            print(run(["podman", "logs", f"{PROJECT}_authz-service_1"], check=False)[-4000:])
            compose("down", timeout=120)


def _answers(client: httpx.Client) -> bool:
    try:
        return client.get(f"{GATEWAY}/public/hello").status_code == 200
    except httpx.HTTPError:
        return False


def token(user: str) -> str:
    form = {
        "grant_type": "password",
        "client_id": "demo-cli",
        "username": user,
        "password": f"{user}-demo-password",
    }
    answer = httpx.post(TOKEN_URL, data=form, timeout=10.0)
    assert answer.status_code == 200, answer.text
    return str(answer.json()["access_token"])


def bearer(user: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token(user)}"}


def test_an_allowed_route_reaches_the_upstream_with_the_identity(stack: httpx.Client) -> None:
    answer = stack.get(f"{GATEWAY}/api/orders", headers=bearer("alice"))

    assert answer.status_code == 200, answer.text
    headers = answer.json()["headers"]
    assert headers["x-user-id"] == "alice"
    assert headers["x-user-roles"] == "editor"
    assert headers["x-user-tier"] == "gold"
    assert "authorization" not in headers  # strip_credentials


def test_a_forbidden_route_is_403_and_no_token_is_401(stack: httpx.Client) -> None:
    forbidden = stack.get(f"{GATEWAY}/admin/users", headers=bearer("alice"))
    anonymous = stack.get(f"{GATEWAY}/api/orders")

    assert forbidden.status_code == 403
    assert forbidden.headers["x-authz-reason"] == "missing_role"
    assert forbidden.json()["reason"] == "missing_role"
    assert anonymous.status_code == 401
    assert anonymous.headers["www-authenticate"].startswith("Bearer")


def test_the_free_tier_is_rate_limited_after_ten_requests(stack: httpx.Client) -> None:
    headers = bearer("bob")
    codes = [stack.get(f"{GATEWAY}/api/orders", headers=headers) for _ in range(12)]

    assert [c.status_code for c in codes[:10]] == [200] * 10, codes[-1].text
    assert codes[-1].status_code == 429
    assert codes[0].headers["x-ratelimit-limit"].startswith("10")


def test_the_request_is_traced_through_envoy_and_the_service(stack: httpx.Client) -> None:
    answer = stack.get(f"{GATEWAY}/api/orders", headers=bearer("carol"))
    traceparent = answer.json()["headers"]["traceparent"]
    trace_id = traceparent.split("-")[1]

    def services() -> set[str]:
        spans: list[dict[str, Any]] = httpx.get(
            SPANS_URL, params={"trace_id": trace_id}, timeout=5.0
        ).json()["spans"]
        return {span["service"] for span in spans}

    # The service's batch exporter sends every few seconds; Envoy's flushes on its own timer.
    wait_until(
        lambda: {"gateway", "authz-service"} <= services(),
        within_s=30,
        what=f"spans of trace {trace_id} from Envoy and the service",
    )


def test_down_leaves_nothing_behind(stack: httpx.Client) -> None:
    compose("down", timeout=120)
    started = time.monotonic()

    assert _leftovers() == [], f"left after down ({time.monotonic() - started:.1f} s)"
