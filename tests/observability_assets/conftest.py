"""Fixtures for the observability assets: the metrics that exist, and checkers for expressions."""

from __future__ import annotations

from collections.abc import Iterable

import pytest

from tests.observability_assets.known_metrics import (
    SYNTHETIC,
    TARGET_LABELS,
    KnownMetrics,
    envoy_metrics,
    service_metrics,
)
from tests.observability_assets.promql import alternatives, matchers, metric_names


@pytest.fixture(scope="session")
def known(tmp_path_factory: pytest.TempPathFactory) -> KnownMetrics:
    merged = service_metrics(tmp_path_factory.mktemp("known-metrics"))
    for name, labels in envoy_metrics().labels.items():
        merged.add(name, labels)
    for name, labels in SYNTHETIC.items():
        merged.add(name, labels)
    return merged


def problems(expr: str, known: KnownMetrics) -> Iterable[str]:
    """What in `expr` names a metric, a label or a label value that does not exist."""
    names = metric_names(expr)
    if not names:
        yield "selects no metric"
    for name in sorted(names - known.labels.keys()):
        yield f"unknown metric {name}"
    for matcher in matchers(expr):
        labels = known.labels.get(matcher.metric)
        if labels is None:
            continue  # reported above
        if matcher.label not in labels | TARGET_LABELS | {"__name__"}:
            yield f"{matcher.metric} has no label {matcher.label!r} (has {sorted(labels)})"
            continue
        allowed = known.values.get((matcher.metric, matcher.label))
        if allowed is None:
            continue
        for value in alternatives(matcher):
            if value not in allowed:
                yield f"{matcher.metric}{{{matcher.label}}} is never {value!r}"
