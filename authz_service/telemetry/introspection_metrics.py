"""Introspection figures (RFC 7662 opaque tokens), read at scrape time from the verifiers of
the config in force through a callable the process wiring passes in (this module knows no
verifier): calls answered and failed per provider, answer cache lookups and size."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector


@dataclass(frozen=True, slots=True)
class IntrospectionFigures:
    provider: str
    answered: int  # calls the endpoint answered usably (active or not)
    failed: int  # requests answered 503: endpoint down, slow, 5xx, garbage
    cache_hits: int
    cache_misses: int
    cache_entries: int


class IntrospectionCollector(Collector):
    def __init__(self, figures: Callable[[], Iterable[IntrospectionFigures]]) -> None:
        self._figures = figures

    def collect(self) -> Iterable[CounterMetricFamily | GaugeMetricFamily]:
        calls = CounterMetricFamily(
            "authz_introspection_calls",
            "Introspection calls per provider: answered, or failed (the request got 503).",
            labels=["provider", "result"],
        )
        lookups = CounterMetricFamily(
            "authz_introspection_cache_lookups",
            "Introspection answer cache lookups per provider, hit / miss.",
            labels=["provider", "result"],
        )
        entries = GaugeMetricFamily(
            "authz_introspection_cache_entries",
            "Introspection answers cached per provider.",
            labels=["provider"],
        )
        for one in self._figures():
            calls.add_metric([one.provider, "answered"], one.answered)
            calls.add_metric([one.provider, "failed"], one.failed)
            lookups.add_metric([one.provider, "hit"], one.cache_hits)
            lookups.add_metric([one.provider, "miss"], one.cache_misses)
            entries.add_metric([one.provider], one.cache_entries)
        yield calls
        yield lookups
        yield entries
