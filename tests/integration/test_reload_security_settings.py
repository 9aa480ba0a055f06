"""A reload that changes a security setting puts it in force, or says a restart is needed.

Before: a reload changing the admin token, the metrics token, the HTTP check's trusted
proxies or the gRPC port's client SAN allow-list reported success and a new version while the
old values stayed in force. Each test serves the real ports in this process, changes one
setting in the file, reloads, and shows what a client now gets.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
import yaml
from cryptography import x509

from authz_service.admin.v1 import admin_pb2, admin_pb2_grpc
from authz_service.schema.secret_digest import secret_digest
from authz_service.server import AuthzServer
from tests.integration.test_grpc_tls import ENVOY_ID, check, client_credentials, running_tls_server
from tests.support.authz_config import open_policy
from tests.support.authz_server import running_server
from tests.support.idp import wait_until

OLD_TOKEN, NEW_TOKEN = "old-token-value", "new-token-value"


def base_config(tmp_path: Path, **sections: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "server": {"listen": "127.0.0.1:0", "watch_config": False, "grace_period_s": 0.1},
        "admin": {"listen": None},
        "telemetry": {"metrics": {"listen": None}, "audit": {"enabled": False}},
        "policies": open_policy(),
    }
    config.update(sections)
    return config


def rewrite(path: Path, change: Any) -> None:
    config = yaml.safe_load(path.read_text())
    change(config)
    path.write_text(yaml.safe_dump(config, sort_keys=False))


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[tuple[AuthzServer, Path]]:
    audit = tmp_path / "audit.log"
    config = base_config(
        tmp_path,
        admin={"listen": "127.0.0.1:0", "token_hash": secret_digest(OLD_TOKEN)},
        telemetry={
            "metrics": {"listen": "127.0.0.1:0", "token_hash": secret_digest(OLD_TOKEN)},
            "audit": {"enabled": True, "output": str(audit)},
        },
        http_check={"listen": "127.0.0.1:0", "trusted_proxies": ["127.0.0.1/32"]},
    )
    path = tmp_path / "authz.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    async with running_server(path) as server:
        yield server, path


async def admin_status(server: AuthzServer, token: str) -> grpc.StatusCode:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.admin_port}") as channel:
        stub = admin_pb2_grpc.AdminServiceStub(channel)
        try:
            await stub.Status(
                admin_pb2.StatusRequest(),
                metadata=[("authorization", f"Bearer {token}")],
                timeout=5,
            )
        except grpc.aio.AioRpcError as error:
            return error.code()
    return grpc.StatusCode.OK


async def test_a_reloaded_admin_token_replaces_the_old_one(
    served: tuple[AuthzServer, Path],
) -> None:
    server, path = served
    assert await admin_status(server, OLD_TOKEN) is grpc.StatusCode.OK

    rewrite(path, lambda c: c["admin"].update(token_hash=secret_digest(NEW_TOKEN)))
    assert await server.reloader.reload() is True

    assert await admin_status(server, OLD_TOKEN) is grpc.StatusCode.UNAUTHENTICATED
    assert await admin_status(server, NEW_TOKEN) is grpc.StatusCode.OK


async def test_a_reloaded_metrics_token_replaces_the_old_one(
    served: tuple[AuthzServer, Path],
) -> None:
    server, path = served
    url = f"http://127.0.0.1:{server.metrics_port}/metrics"

    rewrite(path, lambda c: c["telemetry"]["metrics"].update(token_hash=secret_digest(NEW_TOKEN)))
    assert await server.reloader.reload() is True

    async with httpx.AsyncClient(timeout=5) as client:
        old = await client.get(url, headers={"authorization": f"Bearer {OLD_TOKEN}"})
        new = await client.get(url, headers={"authorization": f"Bearer {NEW_TOKEN}"})
    assert (old.status_code, new.status_code) == (401, 200)


def audit_lines(audit: Path) -> list[str]:
    return audit.read_text().splitlines() if audit.exists() else []


async def nginx_client_ip(server: AuthzServer, audit: Path) -> str:
    """The client address the service records for a check claiming X-Real-IP 203.0.113.9."""
    before = len(audit_lines(audit))
    headers = {"x-original-uri": "/page", "x-original-method": "GET", "x-real-ip": "203.0.113.9"}
    assert server.http_check is not None
    async with httpx.AsyncClient(timeout=5) as client:
        response = await client.get(
            f"http://127.0.0.1:{server.http_check.port}/nginx", headers=headers
        )
    assert response.status_code == 200
    await wait_until(lambda: len(audit_lines(audit)) > before)
    line = json.loads(audit_lines(audit)[-1])
    return str(line["client"]["ip"])


async def test_a_proxy_removed_from_trusted_proxies_is_no_longer_believed(
    served: tuple[AuthzServer, Path], tmp_path: Path
) -> None:
    server, path = served
    audit = tmp_path / "audit.log"
    assert await nginx_client_ip(server, audit) == "203.0.113.9"  # 127.0.0.1 is trusted

    rewrite(path, lambda c: c["http_check"].update(trusted_proxies=["10.0.0.0/8"]))
    assert await server.reloader.reload() is True

    assert await nginx_client_ip(server, audit) == "127.0.0.1"  # the socket's peer now


async def test_a_reloaded_client_san_allow_list_is_enforced(tmp_path: Path) -> None:
    async with running_tls_server(tmp_path) as tls:
        envoy = tls.ca.issue("envoy", [x509.UniformResourceIdentifier(ENVOY_ID)])
        batch = tls.ca.issue(
            "batch", [x509.UniformResourceIdentifier("spiffe://mesh.local/ns/batch/sa/job")]
        )
        assert await check(tls.address, client_credentials(tls.ca, envoy)) == 0

        rewrite(
            tmp_path / "config.yaml",
            lambda c: c["server"]["tls"].update(
                allowed_client_sans=["spiffe://mesh.local/ns/batch/*"]
            ),
        )
        assert await tls.server.reloader.reload() is True

        assert await check(tls.address, client_credentials(tls.ca, batch)) == 0
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await check(tls.address, client_credentials(tls.ca, envoy))
        assert refused.value.code() is grpc.StatusCode.PERMISSION_DENIED


async def test_a_start_only_change_is_reported_as_needing_a_restart(
    served: tuple[AuthzServer, Path], caplog: pytest.LogCaptureFixture
) -> None:
    server, path = served
    rewrite(path, lambda c: c["server"].update(max_concurrent_rpcs=7, listen="127.0.0.1:1"))
    caplog.set_level(logging.WARNING)

    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.admin_port}") as channel:
        stub = admin_pb2_grpc.AdminServiceStub(channel)
        metadata = [("authorization", f"Bearer {OLD_TOKEN}")]
        reloaded = await stub.Reload(admin_pb2.ReloadRequest(), metadata=metadata, timeout=10)
        status = await stub.Status(admin_pb2.StatusRequest(), metadata=metadata, timeout=5)

    expected = ["server.listen", "server.max_concurrent_rpcs"]
    assert reloaded.changed
    assert list(reloaded.restart_required) == expected
    assert list(status.restart_required) == expected
    assert "restart needed to apply: server.listen, server.max_concurrent_rpcs" in caplog.text
    async with httpx.AsyncClient(timeout=5) as client:
        page = await client.get(
            f"http://127.0.0.1:{server.metrics_port}/metrics",
            headers={"authorization": f"Bearer {OLD_TOKEN}"},
        )
    assert 'authz_config_restart_required{setting="server.max_concurrent_rpcs"} 1.0' in page.text
