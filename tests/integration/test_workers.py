"""`serve --workers 2`: two processes, one port each, reloaded and stopped together."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
import yaml
from envoy.service.auth.v3 import external_auth_pb2, external_auth_pb2_grpc

from tools.processes import REPO_ROOT, wait_for_port


def two_free_ports() -> int:
    """A base port whose successor is free too."""
    for _ in range(50):
        with socket.socket() as first:
            first.bind(("127.0.0.1", 0))
            base = first.getsockname()[1]
            with socket.socket() as second:
                try:
                    second.bind(("127.0.0.1", base + 1))
                except OSError:
                    continue
        return int(base)
    raise RuntimeError("no two consecutive free ports")


def write_config(
    path: Path,
    port: int,
    open_prefix: str,
    http_port: int | None = None,
    http_server: str = "aiohttp",
) -> None:
    config: dict[str, Any] = {
        "server": {"listen": f"127.0.0.1:{port}", "grace_period_s": 1, "watch_config": False},
        "admin": {"listen": None},
        "telemetry": {"metrics": {"listen": None}, "audit": {"enabled": False}},
        "policies": {
            "default": {
                "rules": [
                    {
                        "name": "open",
                        "match": {"paths": [{"prefix": open_prefix}]},
                        "allow": "anonymous",
                    }
                ]
            }
        },
    }
    if http_port is not None:
        config["http_check"] = {"listen": f"127.0.0.1:{http_port}", "server": http_server}
    path.write_text(yaml.safe_dump(config))


def check_status(port: int, path: str) -> int:
    request = external_auth_pb2.CheckRequest()
    request.attributes.request.http.method = "GET"
    request.attributes.request.http.path = path
    request.attributes.request.http.host = "api.local"
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = external_auth_pb2_grpc.AuthorizationStub(channel)
        return int(stub.Check(request, timeout=5).status.code)


def start_supervisor(config: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "authz_service",
            "serve",
            "--config",
            str(config),
            "--workers",
            "2",
            "--log-level",
            "WARNING",
        ],
        cwd=REPO_ROOT,
    )


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
def supervisor(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], int, Path]]:
    base = two_free_ports()
    config = tmp_path / "config.yaml"
    write_config(config, base, "/open/")
    process = start_supervisor(config)
    wait_for_port(base, process=process)
    wait_for_port(base + 1, process=process)
    yield process, base, config
    stop(process)


def test_each_worker_serves_check_on_its_own_port(
    supervisor: tuple[subprocess.Popen[bytes], int, Path],
) -> None:
    _, base, _ = supervisor

    assert check_status(base, "/open/a") == 0
    assert check_status(base + 1, "/open/a") == 0
    assert check_status(base + 1, "/closed") == 7  # PERMISSION_DENIED


def test_sighup_reloads_every_worker(supervisor: tuple[subprocess.Popen[bytes], int, Path]) -> None:
    process, base, config = supervisor
    write_config(config, base, "/moved/")

    process.send_signal(signal.SIGHUP)

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if check_status(base, "/moved/x") == 0 and check_status(base + 1, "/moved/x") == 0:
            break
        time.sleep(0.1)
    assert check_status(base, "/moved/x") == 0
    assert check_status(base + 1, "/moved/x") == 0


def test_workers_exit_when_the_supervisor_is_killed(
    supervisor: tuple[subprocess.Popen[bytes], int, Path],
) -> None:
    process, base, _ = supervisor

    process.kill()
    process.wait()

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if all(_closed(port) for port in (base, base + 1)):
            break
        time.sleep(0.1)
    assert _closed(base) and _closed(base + 1)


def _closed(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) != 0


def test_sigterm_stops_all_workers_cleanly(
    supervisor: tuple[subprocess.Popen[bytes], int, Path],
) -> None:
    process, base, _ = supervisor

    process.send_signal(signal.SIGTERM)

    assert process.wait(15) == 0
    for port in (base, base + 1):
        with socket.socket() as probe:
            assert probe.connect_ex(("127.0.0.1", port)) != 0


@pytest.mark.parametrize("http_server", ["aiohttp", "granian"])
def test_each_worker_serves_the_http_check_endpoint_on_its_own_port(
    tmp_path: Path, http_server: str
) -> None:
    base = two_free_ports()
    http_base = base
    while abs(http_base - base) < 2:
        http_base = two_free_ports()
    config = tmp_path / "config.yaml"
    write_config(config, base, "/open/", http_port=http_base, http_server=http_server)
    process = start_supervisor(config)
    try:
        for port in (base, base + 1, http_base, http_base + 1):
            wait_for_port(port, process=process)
        statuses = [
            httpx.get(f"http://127.0.0.1:{port}/envoy{path}", timeout=5).status_code
            for port in (http_base, http_base + 1)
            for path in ("/open/a", "/closed")
        ]
        assert process.poll() is None  # no worker failed to bind and brought it down
    finally:
        stop(process)
    assert statuses == [200, 403, 200, 403]
