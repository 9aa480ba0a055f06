"""A real in-process grpc.aio AuthzServer called over a real gRPC channel."""

from __future__ import annotations

import json

import grpc
import pytest
from envoy.service.auth.v3 import attribute_context_pb2, external_auth_pb2, external_auth_pb2_grpc
from google.rpc import code_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from authz_service.server import AUTHORIZATION_SERVICE, AuthzServer
from tools.dev_idp import DevIdentityProvider

AttributeContext = attribute_context_pb2.AttributeContext


def check_request(
    path: str,
    headers: dict[str, str] | None = None,
    method: str = "GET",
    context: dict[str, str] | None = None,
) -> external_auth_pb2.CheckRequest:
    return external_auth_pb2.CheckRequest(
        attributes=AttributeContext(
            request=AttributeContext.Request(
                http=AttributeContext.HttpRequest(
                    method=method, host="api.example.com", path=path, headers=headers or {}
                )
            ),
            context_extensions=context or {},
        )
    )


async def check(
    channel: grpc.aio.Channel, request: external_auth_pb2.CheckRequest
) -> external_auth_pb2.CheckResponse:
    stub = external_auth_pb2_grpc.AuthorizationStub(channel)
    response: external_auth_pb2.CheckResponse = await stub.Check(request, timeout=5)
    return response


def denied_headers(response: external_auth_pb2.CheckResponse) -> dict[str, str]:
    return {h.header.key: h.header.value for h in response.denied_response.headers}


async def test_check_allows_a_valid_token_with_identity_headers_and_metadata(
    server: AuthzServer, channel: grpc.aio.Channel, idp: DevIdentityProvider
) -> None:
    token = idp.mint("alice", roles=["admin"], extra_claims={"tier": "gold"})
    response = await check(
        channel,
        check_request("/admin/users", {"authorization": f"Bearer {token}", "x-user-id": "mallory"}),
    )
    assert response.status.code == code_pb2.OK
    ok = response.ok_response
    assert {h.header.key: h.header.value for h in ok.headers} == {
        "x-user-id": "alice",
        "x-user-roles": "admin",
        "x-user-tier": "gold",
        "x-auth-method": "jwt",
    }
    assert "authorization" in ok.headers_to_remove
    assert "x-user-id" not in ok.headers_to_remove  # overwritten instead
    assert dict(response.dynamic_metadata) == {
        "policy": "public",
        "rule": "admin-area",
        "principal": "alice",
        "auth_method": "jwt",
        "tier": "gold",
        "roles": "admin",
    }


async def test_check_allows_an_anonymous_route_and_removes_spoofed_identity_headers(
    server: AuthzServer, channel: grpc.aio.Channel
) -> None:
    response = await check(
        channel, check_request("/public/readme", {"x-user-id": "admin", "x-user-roles": "admin"})
    )
    assert response.status.code == code_pb2.OK
    assert list(response.ok_response.headers) == []
    assert {"x-user-id", "x-user-roles", "x-user-tier", "x-auth-method"} <= set(
        response.ok_response.headers_to_remove
    )


async def test_check_without_credentials_on_a_protected_route_is_401(
    server: AuthzServer, channel: grpc.aio.Channel
) -> None:
    response = await check(channel, check_request("/api/items"))
    assert response.status.code == code_pb2.UNAUTHENTICATED
    assert response.denied_response.status.code == 401
    headers = denied_headers(response)
    assert headers["www-authenticate"] == 'Bearer realm="authz-service"'
    assert headers["x-authz-reason"] == "authentication_required"


async def test_check_with_an_expired_token_is_401_invalid_token(
    server: AuthzServer, channel: grpc.aio.Channel, idp: DevIdentityProvider
) -> None:
    token = idp.mint("alice", now=1_000_000_000)
    response = await check(
        channel, check_request("/public/readme", {"authorization": f"Bearer {token}"})
    )
    assert response.denied_response.status.code == 401
    assert 'error="invalid_token"' in denied_headers(response)["www-authenticate"]
    assert json.loads(response.denied_response.body)["reason"] == "token_expired"


async def test_check_with_a_token_lacking_the_role_is_403(
    server: AuthzServer, channel: grpc.aio.Channel, idp: DevIdentityProvider
) -> None:
    token = idp.mint("bob", roles=["reader"])
    response = await check(
        channel, check_request("/admin/users", {"authorization": f"Bearer {token}"})
    )
    assert response.status.code == code_pb2.PERMISSION_DENIED
    assert response.denied_response.status.code == 403
    assert json.loads(response.denied_response.body) == {
        "error": "forbidden",
        "reason": "missing_role",
        "message": "needs one of roles ['admin']",
    }
    assert denied_headers(response)["x-authz-reason"] == "missing_role"


async def test_context_extensions_select_another_policy(
    server: AuthzServer, channel: grpc.aio.Channel
) -> None:
    response = await check(channel, check_request("/public/readme", context={"policy": "internal"}))
    assert response.denied_response.status.code == 403
    assert denied_headers(response)["x-authz-reason"] == "denied_by_rule"
    unknown = await check(channel, check_request("/public/readme", context={"policy": "nope"}))
    assert denied_headers(unknown)["x-authz-reason"] == "unknown_policy"


async def test_health_reports_serving(server: AuthzServer, channel: grpc.aio.Channel) -> None:
    stub = health_pb2_grpc.HealthStub(channel)
    for service in ("", AUTHORIZATION_SERVICE):
        reply = await stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING, service


async def test_reflection_lists_the_authorization_service(
    server: AuthzServer, channel: grpc.aio.Channel
) -> None:
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    call = stub.ServerReflectionInfo(
        iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5
    )
    names = set()
    async for reply in call:
        names.update(service.name for service in reply.list_services_response.service)
    assert "envoy.service.auth.v3.Authorization" in names
    assert "grpc.health.v1.Health" in names


async def test_a_bug_after_the_decision_fails_the_rpc_and_is_counted(
    server: AuthzServer, channel: grpc.aio.Channel, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_args: object) -> None:
        raise RuntimeError("a bug while building the denial")

    monkeypatch.setattr("authz_service.grpc.authorization_servicer.deny_response", broken)

    with pytest.raises(grpc.aio.AioRpcError) as failed:
        await check(channel, check_request("/api/items"))  # no token: the deny path

    # An error status, never an allow: Envoy's failure_mode_allow: false answers 503.
    assert failed.value.code() is grpc.StatusCode.UNKNOWN
    errors = server.metrics.registry.get_sample_value(
        "authz_rpc_errors_total", {"rpc": "Check", "code": "UNKNOWN"}
    )
    assert errors == 1
