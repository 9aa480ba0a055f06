"""CI smoke run of the benchmark harness: seconds of load, no thresholds, so it never rots.

Asserts that every scenario reports every row either with numbers or, only when
AUTHZ_TESTS_REQUIRE_ALL is unset, with an explicit `skipped` reason, and that the chart was
drawn.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import REPO_ROOT, REQUIRE_ALL, find_binary

SCENARIOS = ("1_check", "2_rate_limit", "3_envoy", "4_scaling", "5_memory")
NUMBERS = ("rps", "p50_ms", "p90_ms", "p99_ms")


@pytest.mark.envoy
def test_quick_run_reports_every_scenario(tmp_path: Path) -> None:
    find_binary("h2load")
    find_binary("envoy")
    out, chart = tmp_path / "latest.json", tmp_path / "latest.png"
    quick = ["--quick", "--duration", "1", "--out", str(out), "--chart", str(chart)]
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.run", *quick],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads(out.read_text())
    assert set(report["scenarios"]) == set(SCENARIOS)
    for name, scenario in report["scenarios"].items():
        assert scenario["rows"], name
        for row in scenario["rows"]:
            assert "error" not in row, f"{name}: {row}"
            if "skipped" in row:
                # CI installs every tool and the service has every mode: no row may skip.
                assert not REQUIRE_ALL, f"{name}.{row['key']} skipped: {row['skipped']}"
                assert row["skipped"].strip(), f"{name}: empty skip reason"
            elif name == "5_memory":
                assert row["rss_after_soak_mb"] and row["checks"] > 0
            else:
                for field in NUMBERS:
                    assert isinstance(row[field], int | float), f"{name}.{row['key']}.{field}"
                assert row["requests"] > 0, f"{name}.{row['key']}: no request completed"
                assert not row["errors"], f"{name}.{row['key']}: {row['errors']}"
        for entry in scenario["ratios"]:
            assert "value" in entry or entry.get("skipped"), f"{name}: {entry}"
    direct = {row["key"]: row for row in report["scenarios"]["1_check"]["rows"]}
    if REQUIRE_ALL:  # CI installs every tool: the core comparison must have run
        assert "rps" in direct["null"] and "rps" in direct["warm"], direct
    assert chart.stat().st_size > 0
