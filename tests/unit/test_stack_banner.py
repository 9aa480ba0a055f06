"""The local stack's banner: tokens go to a file of shell variables, not eight times across
the terminal, and it says where to edit policies and see metrics, the admin API and traces."""

from __future__ import annotations

import stat
import subprocess
from pathlib import Path

from tools.stack import banner, write_env_file

TOKEN = "eyJ" + "x" * 700


def test_tokens_are_exported_from_a_private_file_not_printed(tmp_path: Path) -> None:
    env_file = write_env_file(tmp_path, 10000, 10001, {"ALICE": TOKEN, "ADMIN": TOKEN + "y"})

    printed = subprocess.run(
        ["bash", "-c", f'source {env_file} && printf \'%s|%s|%s\' "$ALICE" "$GW" "$CA"'],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert printed == f"{TOKEN}|https://localhost:10000|{tmp_path / 'tls' / 'ca.crt'}"
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600


def test_the_banner_uses_the_variables_and_names_where_to_look() -> None:
    from tools.processes import REPO_ROOT

    state = REPO_ROOT / ".stack"
    text = banner(10000, 10001, state / "env.sh", state, traces=True)

    assert TOKEN[:20] not in text
    assert "source .stack/env.sh" in text
    assert 'Bearer $ALICE" $GW/api/orders' in text
    assert "edit config/local.yaml" in text
    assert "http://127.0.0.1:9102/metrics" in text
    assert "admin --address 127.0.0.1:9002 status" in text
    assert "http://127.0.0.1:16686/api/spans" in text


def test_without_the_receiver_the_banner_says_where_spans_go() -> None:
    from tools.processes import REPO_ROOT

    state = REPO_ROOT / ".stack"
    text = banner(10000, 10001, state / "env.sh", state, traces=False)

    assert "127.0.0.1:4317" in text
    assert "16686" not in text
