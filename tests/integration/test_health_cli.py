"""`authz-service health`: exit 0 while the server is SERVING, 1 when it is not reachable."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

from tools.processes import REPO_ROOT, free_port, start_authz


def health(address: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "authz_service", "health", "--address", address, "--timeout", "2"],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=30,
    )


def test_health_reports_serving_then_failure_after_stop(tmp_path: Path) -> None:
    port = free_port()
    config = tmp_path / "config.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "server": {"listen": f"127.0.0.1:{port}", "watch_config": False},
                "admin": {"listen": None},
                "telemetry": {"metrics": {"listen": None}, "audit": {"enabled": False}},
                "policies": {"default": {"rules": [{"name": "open", "allow": "anonymous"}]}},
            }
        )
    )
    service = start_authz(config, port, tmp_path)
    try:
        healthy = health(f"127.0.0.1:{port}")
    finally:
        service.stop()
    gone = health(f"127.0.0.1:{port}")

    assert healthy.returncode == 0
    assert healthy.stdout.strip() == "SERVING"
    assert gone.returncode == 1
    assert "unhealthy: UNAVAILABLE" in gone.stderr
