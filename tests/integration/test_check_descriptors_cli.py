"""`authz-service check-descriptors` on the shipped Envoy template and rate limits."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tools.processes import REPO_ROOT
from tools.render_envoy import render


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "authz_service", "check-descriptors", *args],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=60,
    )


def rendered_envoy(tmp_path: Path) -> Path:
    path = tmp_path / "envoy.yaml"
    path.write_text(render({"TLS_DIR": str(tmp_path)}))
    return path


def test_the_shipped_envoy_config_and_limits_agree(tmp_path: Path) -> None:
    result = run(
        "--envoy", str(rendered_envoy(tmp_path)), "--config", "config/local.yaml", "--strict"
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 errors, 0 warnings" in result.stdout


def test_a_missing_limit_is_reported_and_fails(tmp_path: Path) -> None:
    limits = tmp_path / "limits"
    limits.mkdir()
    (limits / "gateway.yaml").write_text(
        "domain: gateway\n"
        "descriptors:\n"
        "  - key: remote_address\n"
        "    rate_limit: {unit: minute, requests_per_unit: 600}\n"
    )

    result = run("--envoy", str(rendered_envoy(tmp_path)), "--limits", str(limits))

    assert result.returncode == 1
    assert (
        "error: listener public, route /api/: [(endpoint, api)] matches no limit" in result.stdout
    )
    assert "[(user, *)] matches no limit" in result.stdout


def test_an_unreadable_envoy_config_is_a_clear_error(tmp_path: Path) -> None:
    broken = tmp_path / "envoy.yaml"
    broken.write_text("static_resources: {listeners: [{name: x, address: 7}]}\n")

    result = run("--envoy", str(broken), "--config", "config/local.yaml")

    assert result.returncode == 1
    assert result.stderr.startswith("error: ")
    assert "Traceback" not in result.stderr


def test_success_lists_every_descriptor_with_its_limit(tmp_path: Path) -> None:
    result = run("--envoy", str(rendered_envoy(tmp_path)), "--config", "config/local.yaml")

    assert result.returncode == 0, result.stderr
    listed = [line for line in result.stdout.splitlines() if line.startswith("ok: ")]
    assert len(listed) == 7
    assert any("[(endpoint, api)] limited by api-endpoint" in line for line in listed)
    assert "7 descriptors checked: 0 errors, 0 warnings" in result.stdout


def test_the_unrendered_template_is_refused_with_how_to_render_it() -> None:
    result = run("--envoy", "envoy/envoy.yaml", "--config", "config/local.yaml")

    assert result.returncode == 1
    assert "is a template" in result.stderr
    assert "python -m tools.render_envoy --out" in result.stderr
    assert "Traceback" not in result.stderr
