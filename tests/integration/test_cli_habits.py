"""The CLI behaves as operators expect of a Unix tool: --version, --json where they put it,
exit codes they can script, credentials only from the environment, a quiet broken pipe, and
a container's config checked on the host."""

from __future__ import annotations

import os
import subprocess
import sys
from importlib.metadata import version

import pytest

from authz_service.cli.main import build_parser, main
from tests.support import REPO_ROOT


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "authz_service", *args],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=60,
        env={**os.environ, **(env or {})},
        check=False,
    )


def test_version_prints_the_installed_version() -> None:
    result = cli("--version")

    assert result.returncode == 0
    assert result.stdout.strip() == f"authz-service {version('authz-service')}"


@pytest.mark.parametrize(
    "argv",
    [["admin", "--json", "status"], ["admin", "status", "--json"], ["admin", "quota", "--json",
     "--domain", "d", "--entry", "k=v"]],
)  # fmt: skip
def test_admin_json_is_accepted_before_or_after_the_action(argv: list[str]) -> None:
    assert build_parser().parse_args(argv).json is True


def test_admin_without_json_prints_text() -> None:
    assert build_parser().parse_args(["admin", "status"]).json is False


def test_admin_explain_with_an_unset_token_variable_is_an_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("NO_SUCH_TOKEN_VAR", raising=False)

    # Port 1: nothing answers there, and nothing must be asked.
    code = main(
        ["admin", "--address", "127.0.0.1:1", "explain", "--path", "/api/orders",
         "--token-from-env", "NO_SUCH_TOKEN_VAR"]
    )  # fmt: skip

    assert code == 2
    assert "NO_SUCH_TOKEN_VAR is not set" in capsys.readouterr().err


def test_explain_with_an_unset_token_variable_is_an_error() -> None:
    result = cli(
        "explain", "--config", "config/local.yaml", "--path", "/api/orders",
        "--token-from-env", "NO_SUCH_TOKEN_VAR",
    )  # fmt: skip

    assert result.returncode == 2
    assert "NO_SUCH_TOKEN_VAR is not set" in result.stderr
    assert "decision" not in result.stdout


def test_explain_exit_code_says_allowed_or_denied() -> None:
    allowed = cli("explain", "--config", "config/local.yaml", "--path", "/public/a", "--exit-code")
    denied = cli("explain", "--config", "config/local.yaml", "--path", "/api/a", "--exit-code")
    default = cli("explain", "--config", "config/local.yaml", "--path", "/api/a")

    assert allowed.returncode == 0, allowed.stderr
    assert denied.returncode == 3, denied.stderr
    assert default.returncode == 0  # without --exit-code a deny is still an answer


def test_a_closed_pipe_ends_explain_quietly() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "authz_service", "explain", "--config", "config/local.yaml",
         "--path", "/api/orders", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=REPO_ROOT,
    )  # fmt: skip
    assert process.stdout is not None and process.stderr is not None
    process.stdout.close()  # the reader is gone before the answer is written (`| head -0`)
    stderr = process.stderr.read().decode()
    process.stderr.close()
    process.wait(60)

    assert "Traceback" not in stderr
    assert "BrokenPipeError" not in stderr


def test_check_config_maps_a_containers_paths_to_the_host() -> None:
    without = cli("check-config", "compose/authz/config.yaml")
    mapped = cli(
        "check-config", "--map-path", "/etc/authz-limits=examples/ratelimit/domains",
        "compose/authz/config.yaml",
    )  # fmt: skip

    assert without.returncode == 1
    assert "/etc/authz-limits" in without.stderr
    assert mapped.returncode == 0, mapped.stderr
    assert "compose/authz/config.yaml: OK" in mapped.stdout


def test_a_malformed_path_map_is_a_clear_error() -> None:
    result = cli("check-config", "--map-path", "/etc/authz-limits", "compose/authz/config.yaml")

    assert result.returncode == 1
    assert "expected FROM=TO" in result.stderr
