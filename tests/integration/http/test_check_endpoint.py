"""The HTTP check endpoint of a real in-process AuthzServer, called over real HTTP.

Requests are shaped as NGINX auth_request, Traefik forwardAuth and Envoy http_service send
them; the answers are compared with the gRPC Check's for the same request where they must
match (deny status, headers and body).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import grpc
import httpx
import pytest
from envoy.service.auth.v3 import external_auth_pb2, external_auth_pb2_grpc

from authz_service.server import AuthzServer
from tests.integration.grpc.conftest import service_config
from tests.support.authz_server import Start
from tools.dev_idp import DevIdentityProvider

# Counts up to per-minute limits: never across a minute boundary.
pytestmark = pytest.mark.usefixtures("fresh_minute")


ENDPOINTS = [
    {"path": "/nginx", "integration": "nginx", "context": {"policy": "public"}},
    {"path": "/nginx-internal", "integration": "nginx", "context": {"policy": "internal"}},
    {"path": "/traefik", "integration": "traefik"},
    {"path": "/envoy", "integration": "envoy"},
]


def http_config(idp: DevIdentityProvider, **extra: Any) -> dict[str, Any]:
    config = service_config(idp, watch=False)
    config["http_check"] = {"listen": "127.0.0.1:0", "endpoints": ENDPOINTS}
    config.update(extra)
    return config


@pytest.fixture(params=["aiohttp", "granian"])
async def server(
    request: pytest.FixtureRequest, start: Start, idp: DevIdentityProvider
) -> AuthzServer:
    """Every test through the client runs on both HTTP servers: the same answers."""
    config = http_config(idp)
    config["http_check"]["server"] = request.param
    return await start(config)


@pytest.fixture
async def client(server: AuthzServer) -> AsyncIterator[httpx.AsyncClient]:
    assert server.http_check is not None
    base = f"http://127.0.0.1:{server.http_check.port}"
    async with httpx.AsyncClient(base_url=base, timeout=5.0) as opened:
        yield opened


def nginx(uri: str, method: str = "GET", **headers: str) -> dict[str, str]:
    return {
        "x-original-uri": uri,
        "x-original-method": method,
        "x-original-host": "api.example.com",
        "x-real-ip": "203.0.113.7",
        **headers,
    }


def bearer(token: str) -> str:
    return f"Bearer {token}"


async def test_nginx_allow_is_200_with_identity_headers(
    client: httpx.AsyncClient, idp: DevIdentityProvider
) -> None:
    token = idp.mint("alice", roles=["admin"], extra_claims={"tier": "gold"})
    response = await client.get(
        "/nginx", headers=nginx("/admin/users", authorization=bearer(token))
    )
    assert response.status_code == 200
    assert response.headers["x-user-id"] == "alice"
    assert response.headers["x-user-roles"] == "admin"
    assert response.headers["x-user-tier"] == "gold"
    assert response.headers["x-auth-method"] == "jwt"


async def test_client_identity_headers_never_count_as_identity(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get(
        "/nginx", headers=nginx("/api/orders", **{"x-user-id": "admin", "x-user-roles": "admin"})
    )
    assert response.status_code == 401
    assert response.headers["x-authz-reason"] == "authentication_required"
    assert "x-user-id" not in response.headers


async def test_nginx_missing_token_is_401_with_the_grpc_body_and_headers(
    client: httpx.AsyncClient, server: AuthzServer
) -> None:
    response = await client.get("/nginx", headers=nginx("/api/orders"))
    grpc_deny = await grpc_check(server, "/api/orders")
    assert response.status_code == 401 == grpc_deny.denied_response.status.code
    assert response.text == grpc_deny.denied_response.body
    expected = {h.header.key: h.header.value for h in grpc_deny.denied_response.headers}
    for name, value in expected.items():
        assert response.headers[name] == value
    assert response.headers["www-authenticate"].startswith('Bearer realm="authz-service"')
    assert json.loads(response.headers["x-authz-deny-body"]) == json.loads(response.text)


async def test_wrong_role_is_403_forbidden(
    client: httpx.AsyncClient, idp: DevIdentityProvider
) -> None:
    token = idp.mint("bob", roles=["reader"])
    response = await client.get(
        "/nginx", headers=nginx("/admin/users", authorization=bearer(token))
    )
    assert response.status_code == 403
    assert response.json() == {
        "error": "forbidden",
        "reason": "missing_role",
        "message": response.json()["message"],
    }
    assert response.headers["x-authz-reason"] == "missing_role"


async def test_the_endpoint_context_selects_the_policy(
    client: httpx.AsyncClient, idp: DevIdentityProvider
) -> None:
    token = idp.mint("alice", roles=["admin"])
    public = await client.get("/nginx", headers=nginx("/api/x", authorization=bearer(token)))
    internal = await client.get(
        "/nginx-internal", headers=nginx("/api/x", authorization=bearer(token))
    )
    assert public.status_code == 200
    assert internal.status_code == 403
    assert internal.headers["x-authz-reason"] == "denied_by_rule"


async def test_nginx_request_missing_the_original_method_is_denied(
    client: httpx.AsyncClient,
) -> None:
    headers = nginx("/public/docs")
    del headers["x-original-method"]
    response = await client.get("/nginx", headers=headers)
    assert response.status_code == 403
    assert response.headers["x-authz-reason"] == "bad_request"


async def test_traefik_forward_auth_allow_and_deny(
    client: httpx.AsyncClient, idp: DevIdentityProvider
) -> None:
    token = idp.mint("carol", roles=["reader"])
    forwarded = {
        "x-forwarded-method": "GET",
        "x-forwarded-proto": "https",
        "x-forwarded-host": "api.example.com",
        "x-forwarded-for": "203.0.113.7",
    }
    allowed = await client.get(
        "/traefik",
        headers={**forwarded, "x-forwarded-uri": "/api/orders", "authorization": bearer(token)},
    )
    denied = await client.get(
        "/traefik",
        headers={**forwarded, "x-forwarded-uri": "/admin/x", "authorization": bearer(token)},
    )
    assert (allowed.status_code, allowed.headers["x-user-id"]) == (200, "carol")
    assert (denied.status_code, denied.headers["x-authz-reason"]) == (403, "missing_role")


async def test_envoy_http_service_uses_method_and_path_behind_the_mount(
    client: httpx.AsyncClient, idp: DevIdentityProvider
) -> None:
    token = idp.mint("dave", roles=["admin"])
    response = await client.request(
        "DELETE",
        "/envoy/admin/users/7?force=1",
        headers={"host": "api.example.com", "authorization": bearer(token)},
    )
    assert response.status_code == 200
    assert response.headers["x-user-id"] == "dave"
    # Identity headers without a value and the credential (strip_credentials) go.
    removed = response.headers["x-envoy-auth-headers-to-remove"].split(",")
    assert "authorization" in removed
    assert "x-user-tier" in removed


async def test_http_checks_are_counted_in_the_decision_metrics(
    client: httpx.AsyncClient, server: AuthzServer
) -> None:
    labels = {"decision": "unauthenticated", "reason": "authentication_required"}
    sample = {**labels, "policy": "public"}
    before = server.metrics.registry.get_sample_value("authz_check_decisions_total", sample)
    await client.get("/nginx", headers=nginx("/api/orders"))
    after = server.metrics.registry.get_sample_value("authz_check_decisions_total", sample)
    assert (after or 0) == (before or 0) + 1


async def test_a_path_outside_every_mount_is_404(client: httpx.AsyncClient) -> None:
    assert (await client.get("/elsewhere")).status_code == 404


async def test_a_token_longer_than_8_kib_is_read(
    client: httpx.AsyncClient, idp: DevIdentityProvider
) -> None:
    # aiohttp's default header limit is 8 KiB: the endpoint raises it so that the token's own
    # size limit (max_token_bytes) decides, with the same reason as on the gRPC path.
    token = idp.mint("erin", extra_claims={"padding": "x" * 9000})
    response = await client.get("/nginx", headers=nginx("/api/x", authorization=bearer(token)))
    assert response.status_code == 401
    assert response.headers["x-authz-reason"] == "token_too_large"


QUOTA_LIMITS = {
    "domain": "http",
    "descriptors": [
        {
            "key": "user",
            "rate_limit": {"unit": "minute", "requests_per_unit": 2, "name": "per-user"},
        }
    ],
}


async def test_quota_past_the_limit_is_429_with_rate_limit_headers(
    start: Start, idp: DevIdentityProvider
) -> None:
    server = await start(
        http_config(
            idp,
            rate_limit={"store": "memory", "domains": [QUOTA_LIMITS]},
            check_quota={
                "domain": "http",
                "descriptors": [{"entries": [{"key": "user", "source": "principal"}]}],
            },
        )
    )
    assert server.http_check is not None
    token = idp.mint("frank")
    headers = nginx("/api/orders", authorization=bearer(token))
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.http_check.port}") as c:
        statuses = [(await c.get("/nginx", headers=headers)).status_code for _ in range(2)]
        over = await c.get("/nginx", headers=headers)
    assert statuses == [200, 200]
    assert over.status_code == 429
    assert over.headers["x-ratelimit-limit"].startswith("2")
    assert over.headers["x-ratelimit-remaining"] == "0"
    assert int(over.headers["retry-after"]) >= 1
    assert over.json()["reason"] == "rate_limited"
    assert over.json()["limit"] == "per-user"


async def test_stop_closes_the_http_port(start: Start, idp: DevIdentityProvider) -> None:
    server = await start(http_config(idp))
    assert server.http_check is not None
    port = server.http_check.port
    await server.stop()
    async with httpx.AsyncClient() as c:
        with pytest.raises(httpx.ConnectError):
            await c.get(f"http://127.0.0.1:{port}/nginx", headers=nginx("/public/x"))


async def grpc_check(server: AuthzServer, path: str) -> external_auth_pb2.CheckResponse:
    request = external_auth_pb2.CheckRequest()
    http = request.attributes.request.http
    http.method, http.host, http.path = "GET", "api.example.com", path
    request.attributes.context_extensions["policy"] = "public"
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        stub = external_auth_pb2_grpc.AuthorizationStub(channel)
        response: external_auth_pb2.CheckResponse = await stub.Check(request, timeout=5)
    return response


async def test_http_check_server_setting_picks_the_server(
    server: AuthzServer, client: httpx.AsyncClient
) -> None:
    assert server.http_check is not None
    chosen = server.compiled_config.loaded.config.http_check
    assert chosen is not None
    expected = {"aiohttp": "HttpCheckServer", "granian": "GranianCheckServer"}[chosen.server]
    assert type(server.http_check).__name__ == expected
    assert (await client.get("/elsewhere")).status_code == 404
