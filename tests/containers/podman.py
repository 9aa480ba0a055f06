"""Run podman (and podman-compose) for the container tests, with the project's settings."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable, Sequence

from tests.support import REPO_ROOT

CONTAINERS_CONF = REPO_ROOT / "scripts" / "containers" / "containers.conf"
SERVICE_IMAGE = "localhost/authz-service:dev"


def environment() -> dict[str, str]:
    return {**os.environ, "CONTAINERS_CONF": str(CONTAINERS_CONF)}


def run(argv: Sequence[str], timeout: float = 120.0, check: bool = True) -> str:
    """Run a command with the podman settings; its stdout, or AssertionError with stderr."""
    done = subprocess.run(
        list(argv),
        capture_output=True,
        text=True,
        timeout=timeout,
        env=environment(),
        cwd=REPO_ROOT,
        check=False,
    )
    if check and done.returncode != 0:
        output = done.stdout[-3000:] + done.stderr[-3000:]
        raise AssertionError(f"{' '.join(argv)} exited {done.returncode}:\n{output}")
    return done.stdout


def succeeds(argv: Sequence[str], timeout: float = 30.0) -> bool:
    done = subprocess.run(
        list(argv), capture_output=True, timeout=timeout, env=environment(), check=False
    )
    return done.returncode == 0


def build_images(*args: str) -> None:
    """scripts/containers/build-images.sh: the base rootfs (cached per machine) and images."""
    run([str(REPO_ROOT / "scripts" / "containers" / "build-images.sh"), *args], timeout=1500)


def wait_until(condition: Callable[[], bool], within_s: float, what: str) -> None:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.25)
    raise AssertionError(f"not within {within_s} s: {what}")
