"""Helpers for tests that run real processes on loopback."""

from __future__ import annotations

import os
import shutil
import socket
import sys
import time
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]

# CI sets this so that a missing real dependency (redis-server, envoy) fails the run
# instead of silently skipping the tests that need it.
REQUIRE_ALL = os.environ.get("AUTHZ_TESTS_REQUIRE_ALL") == "1"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def find_binary(name: str) -> str:
    """Path of a binary from the virtualenv or PATH; skip (or fail in CI) when absent."""
    candidate = Path(sys.executable).parent / name
    if candidate.exists():
        return str(candidate)
    found = shutil.which(name)
    if found:
        return found
    message = f"{name} is not installed"
    if REQUIRE_ALL:
        pytest.fail(message + " (AUTHZ_TESTS_REQUIRE_ALL=1 turns this skip into a failure)")
    pytest.skip(message)


def wait_for_port(port: int, timeout: float = 15.0, host: str = "127.0.0.1") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listening on {host}:{port} after {timeout}s")
