"""Logs and readiness a newcomer can act on: a successful reload says so at INFO, a JWKS
failure names the provider and the URL, /readyz waits for every provider's keys."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import httpx
import pytest
import yaml

from authz_service.server import AuthzServer
from tests.integration.grpc.conftest import service_config
from tests.integration.grpc.test_config_reload import opened_internal, replace_file
from tests.support import free_port
from tests.support.authz_config import write_config
from tests.support.authz_server import running_server
from tests.support.idp import wait_until
from tools.dev_idp import DevIdentityProvider


async def test_a_successful_reload_is_logged_at_info(
    server: AuthzServer,
    config_path: Path,
    idp: DevIdentityProvider,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="authz_service.config.reload")
    before = server.compiled_config.version

    replace_file(config_path, yaml.safe_dump(opened_internal(idp), sort_keys=False))
    await wait_until(lambda: server.reloader.status().reloads == 1, within_s=5)

    (record,) = [r for r in caplog.records if "config reloaded" in r.getMessage()]
    assert record.levelno == logging.INFO
    assert str(config_path) in record.getMessage()
    assert f"{before} -> {server.compiled_config.version}" in record.getMessage()


async def test_a_jwks_failure_names_the_provider_and_the_url(
    tmp_path: Path, idp: DevIdentityProvider, caplog: pytest.LogCaptureFixture
) -> None:
    idp.fail_status = 503
    path = write_config(tmp_path / "authz.yaml", service_config(idp))
    provider = service_config(idp)["jwt_providers"][0]
    caplog.set_level(logging.WARNING, logger="authz_service.authn.jwks")

    async with running_server(path):
        await wait_until(lambda: any("jwks fetch" in r.getMessage() for r in caplog.records))

    message = next(r.getMessage() for r in caplog.records if "jwks fetch" in r.getMessage())
    assert f"provider {provider['name']}" in message
    assert idp.jwks_uri in message
    assert "503" in message


async def test_readyz_waits_for_every_providers_keys(
    tmp_path: Path, idp: DevIdentityProvider
) -> None:
    idp.fail_status = 503
    metrics = free_port()
    config = service_config(idp)
    config["telemetry"]["metrics"] = {"listen": f"127.0.0.1:{metrics}"}
    config["jwt_providers"][0]["jwks"] = {"min_refetch_interval_s": 0.2, "refresh_interval_s": 0.3}
    path = write_config(tmp_path / "authz.yaml", config)
    name = config["jwt_providers"][0]["name"]

    async with running_server(path), httpx.AsyncClient(timeout=5) as client:
        url = f"http://127.0.0.1:{metrics}/readyz"
        waiting = await client.get(url)
        idp.fail_status = None
        # The cache retries with back-off (capped by refresh_interval_s): poll until ready.
        async with asyncio.timeout(10):
            while (answer := await client.get(url)).status_code != 200:  # noqa: ASYNC110
                await asyncio.sleep(0.1)

    assert waiting.status_code == 503
    assert waiting.json()["waiting_for_jwks"] == [name]
    assert answer.json()["jwks_keys"][name] >= 1
