"""Revocation through the admin API, seen by a client of the real Envoy gateway."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import grpc
import httpx
import jwt
import pytest

from authz_service.admin.v1 import admin_pb2, admin_pb2_grpc
from authz_service.cli.main import main
from tests.e2e.conftest import Stack, running_stack
from tools.processes import free_port, wait_for_port

pytestmark = pytest.mark.envoy


@dataclass
class AdminStack:
    stack: Stack
    admin_address: str

    def get(self, path: str, token: str) -> httpx.Response:
        with self.stack.client() as client:
            return client.get(
                self.stack.public_url + path, headers={"authorization": f"Bearer {token}"}
            )

    def revoke(self, request: Any) -> Any:
        with grpc.insecure_channel(self.admin_address) as channel:
            return admin_pb2_grpc.AdminServiceStub(channel).Revoke(request, timeout=5)


@pytest.fixture(scope="module")
def admin_stack(
    tmp_path_factory: pytest.TempPathFactory, envoy_available: str
) -> Iterator[AdminStack]:
    admin_port = free_port()

    def enable_admin(config: dict[str, Any]) -> None:
        # Loopback: no admin token needed (test_admin_api covers the token).
        config["admin"] = {"listen": f"127.0.0.1:{admin_port}"}

    with running_stack(tmp_path_factory.mktemp("admin-stack"), edit_config=enable_admin) as stack:
        wait_for_port(admin_port)
        yield AdminStack(stack, f"127.0.0.1:{admin_port}")


def jti_of(token: str) -> str:
    return str(jwt.decode(token, options={"verify_signature": False})["jti"])


def test_a_token_revoked_by_jti_is_denied_401_token_revoked_through_envoy(
    admin_stack: AdminStack,
) -> None:
    idp = admin_stack.stack.idp
    token, other = idp.mint("alice"), idp.mint("alice")
    assert admin_stack.get("/api/orders", token).status_code == 200

    admin_stack.revoke(admin_pb2.RevokeRequest(jti=jti_of(token)))

    response = admin_stack.get("/api/orders", token)
    assert response.status_code == 401, response.text
    assert response.headers["x-authz-reason"] == "token_revoked"
    assert response.json()["reason"] == "token_revoked"
    assert 'error="invalid_token"' in response.headers["www-authenticate"]
    # Another token of the same user is not affected.
    assert admin_stack.get("/api/orders", other).status_code == 200


def test_a_subject_revoked_with_the_cli_is_denied_for_older_tokens_through_envoy(
    admin_stack: AdminStack,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    idp = admin_stack.stack.idp
    older = idp.mint("bob", now=time.time() - 120)
    monkeypatch.delenv("AUTHZ_ADMIN_TOKEN", raising=False)

    code = main(
        [
            "admin",
            "--address",
            admin_stack.admin_address,
            "revoke",
            "--subject",
            "bob",
            "--before",
            str(time.time() - 60),
        ]
    )

    assert code == 0, capsys.readouterr().err
    assert capsys.readouterr().out.startswith("revoked until ")
    response = admin_stack.get("/api/orders", older)
    assert (response.status_code, response.headers["x-authz-reason"]) == (401, "token_revoked")
    assert admin_stack.get("/api/orders", idp.mint("bob")).status_code == 200
