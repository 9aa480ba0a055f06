"""Hot reload of the running AuthzServer: a good file takes over, a bad one is refused."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml
from envoy.service.auth.v3 import external_auth_pb2_grpc

from authz_service.server import AuthzServer
from tests.integration.grpc.conftest import service_config
from tests.integration.grpc.test_authorization_server import check_request
from tests.support.idp import wait_until
from tools.dev_idp import DevIdentityProvider


def replace_file(path: Path, text: str) -> None:
    """Write the whole file at once, as editors and ConfigMaps do."""
    staging = path.with_name(f".{path.name}.tmp")
    staging.write_text(text)
    os.replace(staging, path)


def opened_internal(idp: DevIdentityProvider, **overrides: Any) -> dict[str, Any]:
    config = service_config(idp, **overrides)
    config["policies"]["internal"] = {"rules": [{"name": "open-now", "allow": "anonymous"}]}
    return config


async def internal_status(channel: grpc.aio.Channel) -> int:
    stub = external_auth_pb2_grpc.AuthorizationStub(channel)
    response = await stub.Check(
        check_request("/public/readme", context={"policy": "internal"}), timeout=5
    )
    return 200 if response.HasField("ok_response") else response.denied_response.status.code


async def test_new_valid_file_is_put_in_force_without_a_restart(
    server: AuthzServer, channel: grpc.aio.Channel, config_path: Path, idp: DevIdentityProvider
) -> None:
    assert await internal_status(channel) == 403
    version = server.compiled_config.version

    replace_file(config_path, yaml.safe_dump(opened_internal(idp), sort_keys=False))

    await wait_until(lambda: server.reloader.status().reloads == 1, within_s=5)
    assert await internal_status(channel) == 200
    status = server.reloader.status()
    assert status.version != version
    assert status.last_error == ""


async def test_broken_file_is_refused_and_the_running_config_stays(
    server: AuthzServer, channel: grpc.aio.Channel, config_path: Path
) -> None:
    version = server.compiled_config.version
    good = config_path.read_text()  # noqa: ASYNC240 (a small file, read once)
    broken = good.replace("allow: anonymous", "allow: anonymus", 1)
    line = 1 + broken.splitlines().index(
        next(text for text in broken.splitlines() if "anonymus" in text)
    )

    replace_file(config_path, broken)

    await wait_until(lambda: server.reloader.status().failures >= 1, within_s=5)
    status = server.reloader.status()
    assert status.last_error.startswith(f"{config_path}:{line}: policies.public.rules.0.allow")
    assert status.version == version
    assert await internal_status(channel) == 403


@pytest.fixture
def config_path_unwatched(tmp_path: Path, idp: DevIdentityProvider) -> Path:
    path = tmp_path / "unwatched.yaml"
    path.write_text(yaml.safe_dump(service_config(idp, watch=False), sort_keys=False))
    return path


async def test_reverting_a_broken_file_clears_the_reported_error(
    config_path_unwatched: Path,
) -> None:
    path = config_path_unwatched
    server = AuthzServer(path, "127.0.0.1:0")
    good = path.read_text()
    version = server.compiled_config.version

    path.write_text(good.replace("policies:", "polices:", 1))
    assert await server.reloader.reload() is False
    assert server.reloader.status().last_error.startswith(f"{path}:")

    path.write_text(good)
    assert await server.reloader.reload() is False  # the same version is already running
    status = server.reloader.status()
    assert (status.version, status.last_error, status.failures) == (version, "", 1)
    await server.registry.close()


async def test_a_reload_with_a_duplicated_policy_is_refused_and_the_old_one_stays(
    server: AuthzServer, channel: grpc.aio.Channel, config_path: Path, idp: DevIdentityProvider
) -> None:
    # A second `internal:` mapping that opens everything: YAML alone would let it win.
    good = config_path.read_text()  # noqa: ASYNC240 (a small file, read once)
    version = server.compiled_config.version
    duplicated = good + "  internal:\n    rules:\n    - name: open-now\n      allow: anonymous\n"
    assert yaml.safe_load(duplicated)["policies"]["internal"]["rules"][0]["name"] == "open-now"

    replace_file(config_path, duplicated)

    await wait_until(lambda: server.reloader.status().failures >= 1, within_s=5)
    status = server.reloader.status()
    assert "policies.internal: duplicate key 'internal' (first at " in status.last_error
    assert status.version == version
    assert await internal_status(channel) == 403


async def test_a_reload_naming_an_unset_password_env_is_refused_with_the_setting(
    config_path_unwatched: Path,
) -> None:
    path = config_path_unwatched
    server = AuthzServer(path, "127.0.0.1:0")
    version = server.compiled_config.version
    config = yaml.safe_load(path.read_text())
    config["rate_limit"] = {
        "store": "redis",
        "redis": {"password_env": "AUTHZ_TEST_UNSET_PASSWORD_ENV"},
        "domains": [{"domain": "gateway", "descriptors": []}],
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    assert "AUTHZ_TEST_UNSET_PASSWORD_ENV" not in os.environ

    assert await server.reloader.reload() is False

    status = server.reloader.status()
    assert "rate_limit.redis.password_env: environment variable AUTHZ_TEST_UNSET_PASSWORD_ENV " in (
        status.last_error
    )
    assert status.version == version
    await server.registry.close()
