"""The soak harness (benchmarks/soak.py), short: 20 s through the real Envoy at a steady rate.

The long run (minutes) is `python -m benchmarks.soak`; this keeps the harness working in CI
and catches gross leaks: zero errors, open fds flat, RSS growth bounded.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.soak import run_soak

pytestmark = pytest.mark.envoy


def test_twenty_second_soak_has_no_errors_and_no_fd_or_memory_growth(
    tmp_path: Path, envoy_available: str
) -> None:
    report = run_soak(20, 100, workdir=tmp_path, sample_s=5, warmup_s=3)

    assert report.requests > 20 * 100 * 0.8, report.text()
    assert report.errors == 0, report.text()
    assert report.statuses.keys() == {"200", "401", "403"}, report.text()
    growth_fds = report.growth("open_fds")
    assert growth_fds is not None and growth_fds <= 2, report.text()
    growth_rss = report.growth("rss_mb")
    # Allocator and cache warm-up, not a leak: a leak at 100/s grows steadily past this.
    assert growth_rss is not None and growth_rss < 25, report.text()
    tasks = report.growth("asyncio_tasks")
    assert tasks is None or tasks <= 5, report.text()
