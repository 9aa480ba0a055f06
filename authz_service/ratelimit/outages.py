"""Quota store outages: one log line when a use of the store starts failing, one when it
answers again, and a count of every call answered without it in between.

A Redis outage under load used to log one warning per request (thousands per second). The
state change is what an operator needs in the log; the volume belongs in a metric
(`authz_quota_store_unavailable_total{use}`). One instance lives as long as the store, so a
config reload neither repeats the "unavailable" line nor resets the counts.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable

log = logging.getLogger(__name__)

# What the store is used for; each is counted from zero so its series exists before any outage.
USES = ("rate_limit", "lockout", "replay")


# A store that flaps (a full memory store failing new keys and answering known ones, a
# breaker probe that succeeds once) would otherwise log a pair of lines per request.
MIN_LOG_INTERVAL_S = 10.0


class StoreOutages:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._counts: Counter[str] = Counter()
        self._down_since: dict[str, int] = {}  # use -> its count when the outage began
        self._logged: set[str] = set()  # uses whose current outage was logged
        self._last_logged: dict[str, float] = {}

    def counts(self) -> dict[str, int]:
        """Use -> calls answered without the store since the process started (every use in
        USES listed, from zero)."""
        return {use: self._counts[use] for use in (*USES, *self._counts)}

    def failed(self, use: str, consequence: str, error: object) -> None:
        self._counts[use] += 1
        if use in self._down_since:
            return
        self._down_since[use] = self._counts[use] - 1
        now = self._clock()
        if now - self._last_logged.get(use, -MIN_LOG_INTERVAL_S) < MIN_LOG_INTERVAL_S:
            return  # flapping: counted only, and its recovery is not logged either
        self._last_logged[use] = now
        self._logged.add(use)
        log.warning(
            "quota store unavailable for %s (%s): %s until it answers again; "
            "further failures are only counted in authz_quota_store_unavailable_total",
            use,
            error,
            consequence,
        )

    def answered(self, use: str) -> None:
        began = self._down_since.pop(use, None)
        if began is not None and use in self._logged:
            self._logged.discard(use)
            log.warning(
                "quota store answers %s again, after %d calls answered without it",
                use,
                self._counts[use] - began,
            )
