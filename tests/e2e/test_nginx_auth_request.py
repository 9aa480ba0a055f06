"""NGINX (from the OS packages) in front of the demo upstream, asking authz_service's HTTP
check endpoint before every request with `auth_request`: examples/nginx/nginx.conf as shipped,
with this run's addresses.
"""

from __future__ import annotations

import re
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.http_gateways import GatewayStack, running_gateway
from tests.support import find_binary
from tests.support.raw_http import send_raw
from tools.demo_upstream import start_in_thread
from tools.processes import REPO_ROOT, Process, free_port, spawn, wait_for_port

# Counts up to per-minute limits: never across a minute boundary.
pytestmark = pytest.mark.usefixtures("fresh_minute")

EXAMPLE = REPO_ROOT / "examples" / "nginx" / "nginx.conf"
REQUESTS_PER_MINUTE = 5


def nginx_config(example: str, *, listen: int, authz: int, upstream: int, workdir: Path) -> str:
    """The shipped nginx.conf with this run's ports, and temp files under `workdir`."""
    replacements = {
        "listen 127.0.0.1:8000;": f"listen 127.0.0.1:{listen};",
        "server 127.0.0.1:9003;": f"server 127.0.0.1:{authz};",
        "server 127.0.0.1:8080;": f"server 127.0.0.1:{upstream};",
    }
    text = example
    for old, new in replacements.items():
        assert text.count(old) == 1, f"{EXAMPLE} no longer has {old!r}"
        text = text.replace(old, new)
    temp = "".join(
        f"    {name}_temp_path {workdir / name};\n"
        for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    temp += f"    access_log {workdir / 'access.log'};\n"
    text, count = re.subn(r"^http \{\n", lambda _m: "http {\n" + temp, text, flags=re.M)
    assert count == 1
    return text


def start_nginx(workdir: Path, authz_port: int, upstream_port: int) -> tuple[Process, int]:
    binary = find_binary("nginx")
    port = free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "nginx.conf"
    config.write_text(
        nginx_config(
            EXAMPLE.read_text(),
            listen=port,
            authz=authz_port,
            upstream=upstream_port,
            workdir=workdir,
        )
    )
    globals_ = f"daemon off; pid {workdir / 'nginx.pid'}; error_log {workdir / 'error.log'} warn;"
    check = subprocess.run(
        [binary, "-t", "-q", "-p", str(workdir), "-c", str(config), "-g", globals_],
        capture_output=True,
        text=True,
        check=False,
    )
    assert check.returncode == 0, check.stderr
    process = spawn(
        "nginx", [binary, "-p", str(workdir), "-c", str(config), "-g", globals_], workdir
    )
    wait_for_port(port, process=process.popen)
    return process, port


def with_quota(config: dict[str, Any]) -> None:
    """Check enforces a small per-user quota (the 429 test)."""
    config["rate_limit"]["domains"] = [
        {
            "domain": "nginx-e2e",
            "descriptors": [
                {
                    "key": "user",
                    "rate_limit": {
                        "unit": "minute",
                        "requests_per_unit": REQUESTS_PER_MINUTE,
                        "name": "per-user",
                    },
                }
            ],
        }
    ]
    config["check_quota"] = {
        "domain": "nginx-e2e",
        "descriptors": [{"entries": [{"key": "user", "source": "principal"}]}],
    }


def with_quota_and_an_admin_host_rule(config: dict[str, Any]) -> None:
    """with_quota, and a deny rule for the host admin.example.com ahead of the public rules."""
    with_quota(config)
    rule = {"name": "no-admin-host", "match": {"hosts": ["admin.example.com"]}, "deny": True}
    config["policies"]["public"]["rules"].insert(0, rule)


@pytest.fixture(scope="module", params=["aiohttp", "granian"])
def nginx_stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayStack]:
    find_binary("nginx")
    endpoint = {"path": "/nginx", "integration": "nginx", "context": {"policy": "public"}}
    workdir = tmp_path_factory.mktemp(f"nginx-{request.param}")
    with running_gateway(
        workdir, endpoint, start_nginx, with_quota_and_an_admin_host_rule, request.param
    ) as stack:
        yield stack


def user() -> str:
    return f"user-{uuid.uuid4().hex[:8]}"


def get(
    stack: GatewayStack, path: str, token: str | None = None, **kwargs: object
) -> httpx.Response:
    headers = dict(kwargs.pop("headers", {}) or {})  # type: ignore[call-overload]
    if token is not None:
        headers["authorization"] = f"Bearer {token}"
    method = str(kwargs.pop("method", "GET"))
    return httpx.request(method, stack.url + path, headers=headers, timeout=10.0)


def test_allowed_request_reaches_the_upstream_with_identity_headers_only_from_authz(
    nginx_stack: GatewayStack,
) -> None:
    name = user()
    token = nginx_stack.idp.mint(name, roles=["reader"])
    response = get(
        nginx_stack,
        "/api/orders?page=2",
        token,
        headers={"x-user-tier": "platinum", "x-user-roles": "admin", "x-user-id": "mallory"},
    )
    assert response.status_code == 200, nginx_stack.logs()
    seen = response.json()
    assert seen["path"] == "/api/orders?page=2"
    assert seen["headers"]["x-user-id"] == name
    assert seen["headers"]["x-user-roles"] == "reader"
    assert seen["headers"]["x-auth-method"] == "jwt"
    # The token has no tier: the client's own x-user-tier is dropped, not passed on.
    assert "x-user-tier" not in seen["headers"]


def test_missing_token_is_401_with_www_authenticate_and_the_json_body(
    nginx_stack: GatewayStack,
) -> None:
    response = get(nginx_stack, "/api/orders", headers={"x-user-id": "admin"})
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith('Bearer realm="authz-service"')
    assert response.headers["x-authz-reason"] == "authentication_required"
    assert response.headers["content-type"].startswith("application/json")
    assert response.json()["error"] == "unauthenticated"
    assert response.json()["reason"] == "authentication_required"


def test_invalid_token_is_401_invalid_token(nginx_stack: GatewayStack) -> None:
    response = get(nginx_stack, "/api/orders", "not-a-jwt")
    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["www-authenticate"]


def test_wrong_role_is_403_with_reason(nginx_stack: GatewayStack) -> None:
    token = nginx_stack.idp.mint(user(), roles=["reader"])
    response = get(nginx_stack, "/admin/users", token)
    assert response.status_code == 403
    assert response.headers["x-authz-reason"] == "missing_role"
    assert response.json()["error"] == "forbidden"


@pytest.mark.parametrize("path", ["/admin/%2e%2e/public/readme", "/admin/.%2E/public/readme"])
def test_an_encoded_dot_segment_is_refused_not_decided_on_another_path(
    nginx_stack: GatewayStack, path: str
) -> None:
    # nginx passes $request_uri to the upstream as received, so the upstream may read this as
    # a path under /admin/ while a decoding service would decide on /public/readme (anonymous).
    response = get(nginx_stack, path)
    assert response.status_code == 403, response.text
    assert response.headers["x-authz-reason"] == "bad_request"


@pytest.mark.parametrize(
    "path",
    ["/public/..;/api/orders", "/public/..;x=1/api/orders", "/public/.;/../api/orders",
     "/public/%2e%2e;/api/orders", "/public/..%3B/api/orders"],
)  # fmt: skip
def test_a_dot_segment_with_parameters_is_refused_not_decided_under_public(
    nginx_stack: GatewayStack, path: str
) -> None:
    # nginx passes $request_uri on as received: a Servlet container behind it reads
    # /public/..;/api/orders as /api/orders, which needs a token.
    response = send_raw(nginx_stack.url, path)
    assert (response.status, response.headers.get("x-authz-reason")) == (403, "bad_request")


def test_parameters_on_a_segment_do_not_dodge_the_admin_rule(nginx_stack: GatewayStack) -> None:
    token = nginx_stack.idp.mint(user(), roles=["reader"])
    response = send_raw(
        nginx_stack.url, "/admin;x/users", headers={"authorization": f"Bearer {token}"}
    )
    assert response.status == 403


@pytest.mark.parametrize(
    "host",
    ["admin.example.com", "ADMIN.example.com.", "admin.example.com.:8000", "Admin.Example.Com"],
)
def test_a_host_scoped_rule_holds_for_every_spelling_of_the_host(
    nginx_stack: GatewayStack, host: str
) -> None:
    response = send_raw(nginx_stack.url, "/public/readme", headers={"host": host})
    assert (response.status, response.headers.get("x-authz-reason")) == (403, "denied_by_rule")


def test_the_original_method_decides(nginx_stack: GatewayStack) -> None:
    # nginx sends auth subrequests as GETs: X-Original-Method carries the real one.
    token = nginx_stack.idp.mint(user(), roles=["reader"])
    assert get(nginx_stack, "/api/orders", token).status_code == 200
    write = get(nginx_stack, "/api/orders", token, method="POST")
    assert write.status_code == 403
    assert write.headers["x-authz-reason"] == "missing_role"


def test_past_the_quota_is_429_with_rate_limit_headers(nginx_stack: GatewayStack) -> None:
    token = nginx_stack.idp.mint(user(), roles=["reader"])
    statuses = [get(nginx_stack, "/api/orders", token).status_code for _ in range(5)]
    over = get(nginx_stack, "/api/orders", token)
    assert statuses == [200] * REQUESTS_PER_MINUTE
    assert over.status_code == 429, nginx_stack.logs()
    assert over.headers["x-authz-reason"] == "rate_limited"
    assert over.headers["x-ratelimit-remaining"] == "0"
    assert int(over.headers["retry-after"]) >= 1
    assert over.json()["reason"] == "rate_limited"
    assert over.json()["limit"] == "per-user"


def test_authz_service_down_is_503_fail_closed(tmp_path: Path) -> None:
    upstream = start_in_thread()
    try:
        nginx, port = start_nginx(tmp_path / "nginx", free_port(), upstream.server_address[1])
        try:
            response = httpx.get(f"http://127.0.0.1:{port}/public/x", timeout=10.0)
        finally:
            nginx.stop()
    finally:
        upstream.shutdown()
        upstream.server_close()
    assert response.status_code == 503
    assert response.json()["reason"] == "authz_unavailable"


def test_no_credential_reaches_the_upstream(nginx_stack: GatewayStack) -> None:
    # config/local.yaml strips credentials: the bearer token, the API key and the token cookie.
    token = nginx_stack.idp.mint(user(), roles=["reader"])
    bearer = get(nginx_stack, "/api/orders", token, headers={"cookie": "theme=dark; lang=en"})
    key = get(nginx_stack, "/api/orders", headers={"x-api-key": "dev-only-api-key"})
    cookie = get(nginx_stack, "/api/orders", headers={"cookie": f"a=1; access_token={token}"})
    only_the_token = get(nginx_stack, "/api/orders", headers={"cookie": f"access_token={token}"})

    assert [r.status_code for r in (bearer, key, cookie, only_the_token)] == [200] * 4
    assert "authorization" not in bearer.json()["headers"]
    assert bearer.json()["headers"]["cookie"] == "theme=dark; lang=en"
    assert "x-api-key" not in key.json()["headers"]
    assert cookie.json()["headers"]["cookie"] == "a=1"
    assert "cookie" not in only_the_token.json()["headers"]


def test_a_method_override_is_decided_on_and_never_reaches_the_upstream(
    nginx_stack: GatewayStack,
) -> None:
    token = nginx_stack.idp.mint(user(), roles=["reader"])
    overrides = {"x-http-method-override": "DELETE"}
    denied = get(nginx_stack, "/api/orders/7", token, headers=overrides)
    by_query = get(nginx_stack, "/api/orders/7?_method=DELETE", token)
    same = get(nginx_stack, "/api/orders/7", token, headers={"x-http-method-override": "GET"})

    assert denied.status_code == 403
    assert denied.headers["x-authz-reason"] == "missing_role"
    assert by_query.status_code == 403
    assert same.status_code == 200
    assert "x-http-method-override" not in same.json()["headers"]
