"""Quota store outages are logged when they start and end, at most every few seconds."""

from __future__ import annotations

import pytest

from authz_service.ratelimit.outages import MIN_LOG_INTERVAL_S, StoreOutages


def lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name.startswith("authz_service")]


def test_a_flapping_store_logs_one_outage_per_interval_not_one_per_request(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A full memory store fails a new key and answers the next known one, request after
    request: that must not become two log lines per request."""
    clock = [0.0]
    outages = StoreOutages(clock=lambda: clock[0])
    for _ in range(1000):
        outages.failed("rate_limit", "answering unavailable", "memory store full")
        outages.answered("rate_limit")
    assert len(lines(caplog)) == 2  # the first outage and its end
    clock[0] = MIN_LOG_INTERVAL_S
    outages.failed("rate_limit", "answering unavailable", "memory store full")
    outages.answered("rate_limit")
    assert len(lines(caplog)) == 4
    assert outages.counts()["rate_limit"] == 1001


def test_uses_are_logged_and_counted_apart(caplog: pytest.LogCaptureFixture) -> None:
    outages = StoreOutages(clock=lambda: 0.0)
    outages.failed("lockout", "brute-force lockout not enforced", "down")
    outages.failed("replay", "one-time tokens refused (503)", "down")
    assert len(lines(caplog)) == 2
    assert outages.counts() == {"rate_limit": 0, "lockout": 1, "replay": 1}
