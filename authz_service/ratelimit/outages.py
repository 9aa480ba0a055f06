"""Quota store outages: one log line when a use of the store starts failing, one when it
answers again, and a count of every call answered without it in between.

A Redis outage under load used to log one warning per request (thousands per second). The
state change is what an operator needs in the log; the volume belongs in a metric
(`authz_quota_store_unavailable_total{use}`). One instance lives as long as the store, so a
config reload neither repeats the "unavailable" line nor resets the counts.
"""

from __future__ import annotations

import logging
from collections import Counter

log = logging.getLogger(__name__)

# What the store is used for; each is counted from zero so its series exists before any outage.
USES = ("rate_limit", "lockout", "replay")


class StoreOutages:
    def __init__(self) -> None:
        self._counts: Counter[str] = Counter()
        self._down_since: dict[str, int] = {}  # use -> its count when the outage began

    def unavailable(self, use: str) -> int:
        """Calls of this use answered without the store, since the process started."""
        return self._counts[use]

    def counts(self) -> dict[str, int]:
        return {use: self._counts[use] for use in (*USES, *self._counts)}

    def failed(self, use: str, consequence: str, error: object) -> None:
        self._counts[use] += 1
        if use not in self._down_since:
            self._down_since[use] = self._counts[use] - 1
            log.warning(
                "quota store unavailable for %s (%s): %s until it answers again; "
                "further failures are only counted in authz_quota_store_unavailable_total",
                use,
                error,
                consequence,
            )

    def answered(self, use: str) -> None:
        began = self._down_since.pop(use, None)
        if began is not None:
            log.warning(
                "quota store answers %s again, after %d calls answered without it",
                use,
                self._counts[use] - began,
            )
