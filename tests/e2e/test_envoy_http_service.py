"""The real Envoy in ext_authz `http_service` mode (examples/envoy-http-service/envoy.yaml as
shipped, with this run's ports) calling authz_service's HTTP check endpoint.
"""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import yaml

from tests.support import find_binary
from tools.demo_upstream import start_in_thread
from tools.dev_idp import DevIdentityProvider
from tools.processes import (
    REPO_ROOT,
    Process,
    free_port,
    spawn,
    start_authz,
    wait_for_port,
    write_service_config,
)

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


@dataclass
class EnvoyStack:
    idp: DevIdentityProvider
    url: str
    envoy: Process
    authz: Process

    def logs(self) -> str:
        return f"--- authz ---\n{self.authz.log()}\n--- envoy ---\n{self.envoy.log()}"


@pytest.fixture(scope="module")
def envoy_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EnvoyStack]:
    binary = find_binary("envoy")
    workdir = tmp_path_factory.mktemp("envoy-http")
    idp = DevIdentityProvider()
    idp.start()
    upstream = start_in_thread()
    grpc_port, http_port, listen = free_port(), free_port(), free_port()
    config_path = write_service_config(
        REPO_ROOT / "config" / "local.yaml",
        workdir / "authz.yaml",
        listen_port=grpc_port,
        jwks_uri=idp.jwks_uri,
        overrides={
            "http_check": {
                "listen": f"127.0.0.1:{http_port}",
                "endpoints": [
                    {"path": "/envoy", "integration": "envoy", "context": {"policy": "public"}}
                ],
            }
        },
    )
    authz = start_authz(config_path, grpc_port, workdir)
    envoy: Process | None = None
    try:
        wait_for_port(http_port, process=authz.popen)
        envoy_path = workdir / "envoy.yaml"
        envoy_path.write_text(
            envoy_config(
                yaml.safe_load(EXAMPLE.read_text()),
                listen=listen,
                authz=http_port,
                upstream=upstream.server_address[1],
            )
        )
        envoy = spawn(
            "envoy",
            [binary, "-c", str(envoy_path), "--log-level", "warn", "--disable-hot-restart"],
            workdir,
        )
        wait_for_port(listen, process=envoy.popen)
        yield EnvoyStack(idp, f"http://127.0.0.1:{listen}", envoy, authz)
    finally:
        if envoy is not None:
            envoy.stop()
        authz.stop()
        upstream.shutdown()
        upstream.server_close()
        idp.stop()


def request(
    stack: EnvoyStack, method: str, path: str, token: str | None = None, **headers: str
) -> httpx.Response:
    if token is not None:
        headers["authorization"] = f"Bearer {token}"
    return httpx.request(method, stack.url + path, headers=headers, timeout=10.0)


def test_allowed_request_reaches_the_upstream_with_identity_headers(
    envoy_stack: EnvoyStack,
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
    envoy_stack: EnvoyStack,
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


def test_wrong_role_for_the_method_is_403(envoy_stack: EnvoyStack) -> None:
    token = envoy_stack.idp.mint(f"user-{uuid.uuid4().hex[:8]}", roles=["reader"])
    assert request(envoy_stack, "GET", "/api/orders", token).status_code == 200
    response = request(envoy_stack, "DELETE", "/api/orders/1", token)
    assert response.status_code == 403
    assert response.headers["x-authz-reason"] == "missing_role"
    assert response.json()["error"] == "forbidden"


def test_api_key_is_forwarded_and_accepted(envoy_stack: EnvoyStack) -> None:
    # config/local.yaml's development key; x-api-key is in the filter's allowed_headers.
    response = request(envoy_stack, "GET", "/api/orders", **{"x-api-key": "dev-only-api-key"})
    assert response.status_code == 200
    assert response.json()["headers"]["x-user-id"] == "svc:billing-batch"


def test_public_route_is_allowed_anonymously(envoy_stack: EnvoyStack) -> None:
    response = request(envoy_stack, "GET", "/public/readme")
    assert response.status_code == 200
    assert "x-user-id" not in response.json()["headers"]
