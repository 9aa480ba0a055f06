"""Helpers for tests that run real processes on loopback."""

from __future__ import annotations

import os
import shutil
import socket
import sys
import time
from pathlib import Path

import pytest

from tools.processes import free_port

__all__ = ["REPO_ROOT", "find_binary", "free_port", "wait_for_port"]

REPO_ROOT = Path(__file__).resolve().parents[2]

# CI sets this so that a missing real dependency (redis-server, envoy) fails the run
# instead of silently skipping the tests that need it.
REQUIRE_ALL = os.environ.get("AUTHZ_TESTS_REQUIRE_ALL") == "1"


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
