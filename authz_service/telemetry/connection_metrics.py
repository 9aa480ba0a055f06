"""Connections per HTTP port (open, refused past the cap, cut off for a slow request head),
read at scrape time from the listeners' own counts."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector


class ConnectionStats:
    """What a listener counts (http/guarded_listener.py), read at scrape time."""

    def __init__(self, port_name: str) -> None:
        self.port_name = port_name
        self.open = 0
        self.refused = 0
        self.timed_out = 0


class ConnectionCollector(Collector):
    def __init__(self, stats: Sequence[ConnectionStats]) -> None:
        self._stats = stats

    def collect(self) -> Iterator[Metric]:
        if not self._stats:
            return  # no HTTP port listening (yet): no families without samples
        opened = GaugeMetricFamily(
            "authz_connections_open", "Open connections, by HTTP port.", labels=["port"]
        )
        refused = CounterMetricFamily(
            "authz_connections_refused",
            "Connections closed on accept because the port was at connections.max_connections.",
            labels=["port"],
        )
        timed_out = CounterMetricFamily(
            "authz_connections_header_timeouts",
            "Connections closed because a request head took over connections.header_timeout_s.",
            labels=["port"],
        )
        for stats in self._stats:
            opened.add_metric([stats.port_name], stats.open)
            refused.add_metric([stats.port_name], stats.refused)
            timed_out.add_metric([stats.port_name], stats.timed_out)
        yield opened
        yield refused
        yield timed_out
