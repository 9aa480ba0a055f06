"""The harness's ratios: computed only from rows that measured what they claim."""

from __future__ import annotations

from benchmarks.measure import ratio


def test_a_ratio_is_refused_when_a_row_had_failed_requests() -> None:
    rows = [
        {"key": "ours", "rps": 900.0, "errors": {"status": 3}},
        {"key": "null", "rps": 1000.0, "errors": {}},
    ]
    entry = ratio("ours / null", rows, "ours", "null", 0.8)
    assert "value" not in entry
    assert entry["skipped"].startswith("ours: 3 requests failed")


def test_a_ratio_of_error_free_rows_is_computed_against_its_target() -> None:
    rows = [
        {"key": "ours", "rps": 900.0, "errors": {"status": 0}},
        {"key": "null", "rps": 1000.0, "errors": {}},
    ]
    entry = ratio("ours / null", rows, "ours", "null", 0.8)
    assert entry["value"] == 0.9
    assert entry["meets_target"] is True
