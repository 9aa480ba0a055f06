"""The Envoy metric names the alerts and the dashboard use, against a real Envoy running the
gateway template (envoy/envoy.yaml): present on an idle Envoy's /stats/prometheus, or among the
stats Envoy creates on first use, which envoy_metric_names.txt recorded from a run with traffic.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest
import yaml

from tests.observability_assets.envoy_metrics import exposed_series, read_series
from tests.observability_assets.promql import fill_grafana_variables, metric_names
from tests.support import REPO_ROOT, find_binary
from tools.processes import free_port, start_envoy

ASSETS = REPO_ROOT / "deploy" / "observability"

# Stats Envoy creates the first time they count: ext_authz and ratelimit outcomes (counted on
# the route's target cluster), response-code classes and request-time histograms of a cluster.
CREATED_ON_FIRST_USE = frozenset(
    {
        "envoy_cluster_upstream_rq_xx",
        "envoy_cluster_upstream_rq_time_bucket",
        "envoy_cluster_ext_authz_ok",
        "envoy_cluster_ext_authz_denied",
        "envoy_cluster_ext_authz_error",
        "envoy_cluster_ratelimit_ok",
        "envoy_cluster_ratelimit_over_limit",
        "envoy_cluster_ratelimit_error",
        "envoy_cluster_ratelimit_failure_mode_allowed",
    }
)


def used_envoy_names() -> set[str]:
    exprs = [
        rule["expr"]
        for group in yaml.safe_load((ASSETS / "prometheus-rules.yml").read_text())["groups"]
        for rule in group["rules"]
    ]
    dashboard = json.loads((ASSETS / "grafana-dashboard.json").read_text())
    exprs += [
        fill_grafana_variables(target["expr"])
        for panel in dashboard["panels"]
        for target in panel.get("targets", [])
    ]
    return {name for expr in exprs for name in metric_names(expr) if name.startswith("envoy_")}


@pytest.fixture(scope="module")
def idle_envoy_series(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, set[str]]]:
    find_binary("envoy")
    metrics_port = free_port()
    envoy = start_envoy(
        {"METRICS_PORT": metrics_port}, tmp_path_factory.mktemp("envoy"), [metrics_port]
    )
    try:
        text = httpx.get(f"http://127.0.0.1:{metrics_port}/stats/prometheus", timeout=10).text
        yield exposed_series(text)
    finally:
        envoy.stop()


def test_the_assets_use_envoy_metrics() -> None:
    used = used_envoy_names()

    assert {"envoy_http_ext_authz_error", "envoy_cluster_ratelimit_error"} <= used


@pytest.mark.envoy
def test_every_envoy_name_used_is_on_a_real_envoy(idle_envoy_series: dict[str, set[str]]) -> None:
    missing = used_envoy_names() - idle_envoy_series.keys() - CREATED_ON_FIRST_USE

    assert missing == set()


def test_names_created_on_first_use_were_seen_on_a_real_envoy_with_traffic() -> None:
    recorded = read_series()

    assert set(CREATED_ON_FIRST_USE) <= recorded.keys(), (
        "regenerate: python -m tests.observability_assets.envoy_metrics"
    )


@pytest.mark.envoy
def test_the_recorded_list_matches_the_idle_envoy(idle_envoy_series: dict[str, set[str]]) -> None:
    """Same Envoy, same names: a stat of the idle Envoy that the list lacks means the list was
    recorded from another Envoy version (or before a template change): regenerate it."""
    recorded = read_series()
    used_idle = used_envoy_names() & idle_envoy_series.keys()

    assert used_idle <= recorded.keys()
    for name in used_idle:
        assert recorded[name] == idle_envoy_series[name], name
