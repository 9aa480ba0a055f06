"""The real Envoy in ext_authz `http_service` mode (examples/envoy-http-service/envoy.yaml as
shipped, with this run's ports) calling authz_service's HTTP check endpoint.
"""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.e2e.http_gateways import GatewayStack, running_gateway
from tests.support import find_binary
from tools.processes import REPO_ROOT, Process, free_port, spawn, wait_for_port

EXAMPLE = REPO_ROOT / "examples" / "envoy-http-service" / "envoy.yaml"


def _socket_address(node: dict[str, Any]) -> dict[str, Any]:
    address: dict[str, Any] = node["address"]["socket_address"]
    return address


def envoy_config(example: dict[str, Any], *, listen: int, authz: int, upstream: int) -> str:
    """The shipped config with this run's ports (edited as data, so its shape is checked)."""
    config = dict(example)
    _socket_address(config["admin"])["port_value"] = free_port()
    (listener,) = config["static_resources"]["listeners"]
    _socket_address(listener)["port_value"] = listen
    ports = {"authz_http": authz, "upstream": upstream}
    for cluster in config["static_resources"]["clusters"]:
        (endpoint,) = cluster["load_assignment"]["endpoints"][0]["lb_endpoints"]
        _socket_address(endpoint["endpoint"])["port_value"] = ports.pop(cluster["name"])
    assert not ports, f"clusters missing from {EXAMPLE}: {ports}"
    return yaml.safe_dump(config)


def test_the_shipped_config_is_valid_for_envoy() -> None:
    binary = find_binary("envoy")
    result = subprocess.run(
        [binary, "--mode", "validate", "-c", str(EXAMPLE)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


ACCESS_LOG = "access.log"
FILE_ACCESS_LOG = "type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog"
# What the rate-limit filter would read: the metadata ext_authz set from our answer's headers.
METADATA_FORMAT = (
    "%DYNAMIC_METADATA(envoy.filters.http.ext_authz:x-user-id)% "
    "%DYNAMIC_METADATA(envoy.filters.http.ext_authz:x-user-tier)%\n"
)


def with_access_log(example: dict[str, Any], path: Path) -> None:
    """A file access log of the dynamic metadata, on the shipped listener (test-only)."""
    (listener,) = example["static_resources"]["listeners"]
    manager = listener["filter_chains"][0]["filters"][0]["typed_config"]
    manager["access_log"] = [
        {
            "name": "envoy.access_loggers.file",
            "typed_config": {
                "@type": FILE_ACCESS_LOG,
                "path": str(path),
                "log_format": {"text_format_source": {"inline_string": METADATA_FORMAT}},
            },
        }
    ]


def start_envoy(workdir: Path, authz_port: int, upstream_port: int) -> tuple[Process, int]:
    binary = find_binary("envoy")
    listen = free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "envoy.yaml"
    example = yaml.safe_load(EXAMPLE.read_text())
    with_access_log(example, workdir / ACCESS_LOG)
    rendered = envoy_config(example, listen=listen, authz=authz_port, upstream=upstream_port)
    config.write_text(rendered)
    envoy = spawn(
        "envoy",
        [binary, "-c", str(config), "--log-level", "warn", "--disable-hot-restart"],
        workdir,
    )
    wait_for_port(listen, process=envoy.popen)
    return envoy, listen


@pytest.fixture(scope="module", params=["aiohttp", "granian"])
def envoy_stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayStack]:
    """The same Envoy in front of either HTTP server of the check endpoint."""
    endpoint = {"path": "/envoy", "integration": "envoy", "context": {"policy": "public"}}
    workdir = tmp_path_factory.mktemp(f"envoy-http-{request.param}")
    with running_gateway(workdir, endpoint, start_envoy, server=request.param) as stack:
        yield stack


def request(
    stack: GatewayStack, method: str, path: str, token: str | None = None, **headers: str
) -> httpx.Response:
    if token is not None:
        headers["authorization"] = f"Bearer {token}"
    return httpx.request(method, stack.url + path, headers=headers, timeout=10.0)


def test_allowed_request_reaches_the_upstream_with_identity_headers(
    envoy_stack: GatewayStack,
) -> None:
    name = f"user-{uuid.uuid4().hex[:8]}"
    token = envoy_stack.idp.mint(name, roles=["editor"], extra_claims={"email": "e@x.example"})
    response = request(
        envoy_stack,
        "POST",
        "/api/orders?draft=1",
        token,
        **{"x-user-tier": "platinum", "x-user-id": "mallory", "x-user-roles": "admin"},
    )
    assert response.status_code == 200, envoy_stack.logs()
    seen = response.json()
    assert (seen["method"], seen["path"]) == ("POST", "/api/orders?draft=1")
    headers = seen["headers"]
    assert headers["x-user-id"] == name
    assert headers["x-user-roles"] == "editor"
    assert headers["x-user-email"] == "e@x.example"
    # Not in the token: the client's copy is removed, as is the credential (strip_credentials).
    assert "x-user-tier" not in headers
    assert "authorization" not in headers
    assert "x-envoy-auth-headers-to-remove" not in headers


def test_missing_token_is_401_with_www_authenticate_and_json_body(
    envoy_stack: GatewayStack,
) -> None:
    response = request(envoy_stack, "GET", "/api/orders")
    assert response.status_code == 401, envoy_stack.logs()
    assert response.headers["www-authenticate"].startswith('Bearer realm="authz-service"')
    assert response.headers["x-authz-reason"] == "authentication_required"
    assert response.json() == {
        "error": "unauthenticated",
        "reason": "authentication_required",
        "message": "authentication required",
    }


def test_wrong_role_for_the_method_is_403(envoy_stack: GatewayStack) -> None:
    token = envoy_stack.idp.mint(f"user-{uuid.uuid4().hex[:8]}", roles=["reader"])
    assert request(envoy_stack, "GET", "/api/orders", token).status_code == 200
    response = request(envoy_stack, "DELETE", "/api/orders/1", token)
    assert response.status_code == 403
    assert response.headers["x-authz-reason"] == "missing_role"
    assert response.json()["error"] == "forbidden"


def test_api_key_is_forwarded_and_accepted(envoy_stack: GatewayStack) -> None:
    # config/local.yaml's development key; x-api-key is in the filter's allowed_headers.
    response = request(envoy_stack, "GET", "/api/orders", **{"x-api-key": "dev-only-api-key"})
    assert response.status_code == 200
    assert response.json()["headers"]["x-user-id"] == "svc:billing-batch"


def test_public_route_is_allowed_anonymously(envoy_stack: GatewayStack) -> None:
    response = request(envoy_stack, "GET", "/public/readme")
    assert response.status_code == 200
    assert "x-user-id" not in response.json()["headers"]


def test_the_token_cookie_is_cut_out_and_the_other_cookies_reach_the_upstream(
    envoy_stack: GatewayStack,
) -> None:
    token = envoy_stack.idp.mint(f"user-{uuid.uuid4().hex[:8]}", roles=["reader"])
    mixed = request(envoy_stack, "GET", "/api/orders", cookie=f"a=1; access_token={token}; b=2")
    only = request(envoy_stack, "GET", "/api/orders", cookie=f"access_token={token}")

    assert (mixed.status_code, only.status_code) == (200, 200), envoy_stack.logs()
    assert mixed.json()["headers"]["cookie"] == "a=1; b=2"
    assert "cookie" not in only.json()["headers"]


def test_a_method_override_is_decided_on_and_never_reaches_the_upstream(
    envoy_stack: GatewayStack,
) -> None:
    token = envoy_stack.idp.mint(f"user-{uuid.uuid4().hex[:8]}", roles=["reader"])
    denied = request(envoy_stack, "GET", "/api/orders/7", token, **{"x-http-method": "DELETE"})
    same = request(envoy_stack, "GET", "/api/orders/7", token, **{"x-http-method": "GET"})

    assert denied.status_code == 403, envoy_stack.logs()
    assert denied.headers["x-authz-reason"] == "missing_role"
    assert same.status_code == 200
    assert "x-http-method" not in same.json()["headers"]


def test_the_answer_headers_become_dynamic_metadata_for_the_rate_limit_filter(
    envoy_stack: GatewayStack,
) -> None:
    name = f"user-{uuid.uuid4().hex[:8]}"
    token = envoy_stack.idp.mint(name, roles=["editor"], extra_claims={"tier": "gold"})
    response = request(envoy_stack, "GET", "/api/orders", token)
    assert response.status_code == 200, envoy_stack.logs()
    access_log = envoy_stack.gateway.log_path.parent / ACCESS_LOG
    deadline = time.monotonic() + 10.0
    lines: list[str] = []
    while time.monotonic() < deadline:  # Envoy flushes its access log on its own timer
        lines = access_log.read_text().splitlines() if access_log.exists() else []
        if any(line.startswith(name) for line in lines):
            break
        time.sleep(0.05)  # poll interval of the wait on the condition above
    (line,) = [line for line in lines if line.startswith(name)]
    assert line == f"{name} gold"  # principal and tier, as a descriptor would read them
