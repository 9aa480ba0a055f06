"""The service runs on uvloop by default (`server.event_loop: auto`, uvloop is a dependency),
and on asyncio's own loop when `server.event_loop` or `serve --loop` says so; either way it
answers checks on both transports. Real `serve` subprocesses."""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvloop  # noqa: F401  # a dependency: missing, this module fails rather than skips

from tests.support import free_port
from tests.support.authz_config import open_policy, write_config
from tools.processes import Process, spawn, wait_for_port


def _config(tmp_path: Path, event_loop: str | None) -> tuple[Path, int, int]:
    grpc_port, http_port = free_port(), free_port()
    server: dict[str, Any] = {"listen": f"127.0.0.1:{grpc_port}", "watch_config": False}
    if event_loop is not None:
        server["event_loop"] = event_loop
    config = {
        "server": server,
        "admin": {"listen": None},
        "telemetry": {"metrics": {"listen": None}, "audit": {"enabled": False}},
        "policies": open_policy(),
        "http_check": {
            "listen": f"127.0.0.1:{http_port}",
            "server": "granian",
            "endpoints": [{"path": "/envoy", "integration": "envoy"}],
        },
    }
    return write_config(tmp_path / "authz.yaml", config), grpc_port, http_port


@pytest.fixture
def processes() -> Iterator[list[Process]]:
    started: list[Process] = []
    yield started
    for process in started:
        process.stop()


def _serve(
    tmp_path: Path, processes: list[Process], event_loop: str | None, *cli: str
) -> tuple[Process, int, int]:
    config, grpc_port, http_port = _config(tmp_path, event_loop)
    argv = [sys.executable, "-m", "authz_service", "serve", "--config", str(config), *cli]
    process = spawn("authz", [*argv, "--log-level", "INFO"], tmp_path)
    processes.append(process)
    wait_for_port(grpc_port, process=process.popen)
    wait_for_port(http_port, process=process.popen)
    return process, grpc_port, http_port


def _loop_line(process: Process, timeout_s: float = 10.0) -> str:
    """The startup line naming the loop (logged once the ports are open)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for line in process.log().splitlines():
            if "event loop" in line:
                return line
        time.sleep(0.05)  # polling the log for the condition, not a barrier
    raise AssertionError(f"no event loop line in the log:\n{process.log()}")


def _answers_both_transports(grpc_port: int, http_port: int) -> None:
    check = urllib.request.Request(
        f"http://127.0.0.1:{http_port}/envoy/anything", headers={"Host": "api.local"}
    )
    with urllib.request.urlopen(check, timeout=5) as response:
        assert response.status == 200
    health = [sys.executable, "-m", "authz_service", "health"]
    done = subprocess.run(
        [*health, "--address", f"127.0.0.1:{grpc_port}"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_serve_runs_on_uvloop_by_default(tmp_path: Path, processes: list[Process]) -> None:
    process, grpc_port, http_port = _serve(tmp_path, processes, None)

    assert "running on the uvloop event loop" in _loop_line(process)
    _answers_both_transports(grpc_port, http_port)


def test_event_loop_setting_asyncio_runs_on_asyncios_own_loop(
    tmp_path: Path, processes: list[Process]
) -> None:
    process, grpc_port, http_port = _serve(tmp_path, processes, "asyncio")

    assert "running on the asyncio event loop" in _loop_line(process)
    _answers_both_transports(grpc_port, http_port)


def test_serve_loop_flag_overrides_the_setting(tmp_path: Path, processes: list[Process]) -> None:
    process, _, _ = _serve(tmp_path, processes, "uvloop", "--loop", "asyncio")

    assert "running on the asyncio event loop" in _loop_line(process)
