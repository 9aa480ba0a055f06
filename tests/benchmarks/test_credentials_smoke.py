"""CI smoke run of benchmarks/credentials.py: a few calls per row, no thresholds, so that the
rows (the introspection ones with their endpoint child process included) never rot."""

from __future__ import annotations

import subprocess
import sys

from tests.support import REPO_ROOT

ROWS = (
    "bearer JWT verify",
    "DPoP proof verify",
    "opaque token, cached answer",
    "opaque token, introspected",
    "introspection endpoint (child process)",
)


def test_every_credential_row_is_measured() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "benchmarks.credentials", "--calls", "20"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    for row in ROWS:
        assert row in run.stdout, run.stdout
