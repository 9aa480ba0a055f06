"""A service that cannot start says why in one line and exits 1, leaving nothing running.

Real subprocesses: an unset `password_env`, and each port (gRPC, admin, metrics, HTTP check)
already taken by another listener. No traceback, no half-started process.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.test_workers import two_free_ports
from tests.support import REPO_ROOT, free_port
from tests.support.authz_config import open_policy, write_config

UNSET_ENV = "AUTHZ_TEST_REDIS_PASSWORD_NEVER_SET"


def run_cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if key != UNSET_ENV}
    return subprocess.run(
        [sys.executable, "-m", "authz_service", *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,  # a half-started process that never exits fails the test here
        check=False,
    )


def base_config(**sections: Any) -> dict[str, Any]:
    return {
        "server": {"listen": f"127.0.0.1:{free_port()}", "watch_config": False},
        "admin": {"listen": None},
        "telemetry": {"metrics": {"listen": None}, "audit": {"enabled": False}},
        "policies": open_policy(),
        **sections,
    }


def with_unset_password_env() -> dict[str, Any]:
    return base_config(
        rate_limit={
            "store": "redis",
            "redis": {"url": "redis://127.0.0.1:9/0", "password_env": UNSET_ENV},
            "domains": [{"domain": "gateway", "descriptors": []}],
        }
    )


def only_line(stderr: str) -> str:
    assert "Traceback" not in stderr, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    return lines[0]


def test_check_config_names_an_unset_password_env(tmp_path: Path) -> None:
    path = write_config(tmp_path / "authz.yaml", with_unset_password_env())

    result = run_cli("check-config", str(path))

    assert result.returncode == 1
    line = only_line(result.stderr)
    assert line.startswith(f"error: {path}:")
    assert f"rate_limit.redis.password_env: environment variable {UNSET_ENV} is not set" in line


def test_serve_names_an_unset_password_env_and_exits(tmp_path: Path) -> None:
    path = write_config(tmp_path / "authz.yaml", with_unset_password_env())

    result = run_cli("serve", "--config", str(path), "--log-level", "WARNING")

    assert result.returncode == 1
    line = only_line(result.stderr)
    assert f"rate_limit.redis.password_env: environment variable {UNSET_ENV} is not set" in line


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A port another process already listens on."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield int(holder.getsockname()[1])


def _listen_at(setting: str, port: int) -> dict[str, Any]:
    address = f"127.0.0.1:{port}"
    if setting == "server.listen":
        return base_config(server={"listen": address, "watch_config": False})
    if setting == "admin.listen":
        return base_config(admin={"listen": address})
    if setting == "telemetry.metrics.listen":
        return base_config(telemetry={"metrics": {"listen": address}, "audit": {"enabled": False}})
    return base_config(http_check={"listen": address})


@pytest.mark.parametrize(
    "setting", ["server.listen", "admin.listen", "telemetry.metrics.listen", "http_check.listen"]
)
def test_a_port_in_use_is_one_line_naming_the_setting_and_nothing_stays_running(
    tmp_path: Path, taken_port: int, setting: str
) -> None:
    path = write_config(tmp_path / "authz.yaml", _listen_at(setting, taken_port))

    result = run_cli("serve", "--config", str(path), "--log-level", "WARNING")

    assert result.returncode == 1
    assert only_line(result.stderr) == (
        f"error: {setting} 127.0.0.1:{taken_port}: cannot listen: address already in use"
    )


DUPLICATED_POLICY = """\
policy_selection: {default: public}
policies:
  public:
    rules: [{name: admin, match: {paths: [{prefix: /admin/}]}, allow: {roles_any: [admin]}}]
  public:
    rules: [{name: everything, allow: anonymous}]
"""


@pytest.mark.parametrize("command", ["check-config", "serve"])
def test_a_duplicated_policy_is_refused_by_check_config_and_serve(
    tmp_path: Path, command: str
) -> None:
    path = tmp_path / "authz.yaml"
    path.write_text(DUPLICATED_POLICY)
    args = [command, str(path)] if command == "check-config" else [command, "--config", str(path)]

    result = run_cli(*args, "--log-level", "WARNING") if command == "serve" else run_cli(*args)

    assert result.returncode == 1
    assert only_line(result.stderr) == (
        f"error: {path}:5: policies.public: duplicate key 'public' (first at {path}:3)"
    )


def test_workers_with_an_unset_password_env_exit_at_once_instead_of_restarting(
    tmp_path: Path,
) -> None:
    path = write_config(tmp_path / "authz.yaml", with_unset_password_env())

    result = run_cli("serve", "--config", str(path), "--workers", "2", "--log-level", "ERROR")

    assert result.returncode == 1
    line = only_line(result.stderr)
    assert f"rate_limit.redis.password_env: environment variable {UNSET_ENV} is not set" in line


def test_workers_name_a_taken_port_of_the_second_worker(tmp_path: Path) -> None:
    # Worker i listens on the base port + i: the second worker's port is the taken one.
    base = two_free_ports()
    taken_port = base + 1
    config = base_config(server={"listen": f"127.0.0.1:{base}", "watch_config": False})
    path = write_config(tmp_path / "authz.yaml", config)

    with socket.socket() as holder:
        holder.bind(("127.0.0.1", taken_port))
        holder.listen()
        result = run_cli("serve", "--config", str(path), "--workers", "2", "--log-level", "ERROR")

    assert result.returncode == 1
    assert only_line(result.stderr) == (
        f"error: server.listen 127.0.0.1:{taken_port}: cannot listen: address already in use"
    )


@pytest.mark.parametrize(
    "setting", ["admin.listen", "telemetry.metrics.listen", "http_check.listen"]
)
async def test_a_port_lost_after_the_check_stops_what_had_started(
    tmp_path: Path, taken_port: int, setting: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Another process takes the port between the check and the bind: the start fails with
    # the same one line, and the gRPC port that was already bound is closed again.
    from authz_service import server as server_module
    from authz_service.preflight.ports import ListenError
    from authz_service.server import AuthzServer

    monkeypatch.setattr(server_module, "check_all", lambda listens: None)
    path = write_config(tmp_path / "authz.yaml", _listen_at(setting, taken_port))
    server = AuthzServer(path, "127.0.0.1:0")

    with pytest.raises(ListenError, match=rf"^{setting} 127.0.0.1:{taken_port}: cannot listen"):
        await server.start()

    assert server.port != 0
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", server.port), timeout=2).close()
