"""deploy/observability/grafana-dashboard.json: a Grafana dashboard whose every query selects
metrics that exist, through a templated Prometheus data source; promtool parses every query."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.observability_assets.conftest import problems
from tests.observability_assets.known_metrics import KnownMetrics
from tests.observability_assets.promql import fill_grafana_variables
from tests.support import REPO_ROOT, find_binary

DASHBOARD_FILE = REPO_ROOT / "deploy" / "observability" / "grafana-dashboard.json"
DASHBOARD: dict[str, Any] = json.loads(DASHBOARD_FILE.read_text())
PANELS = [panel for panel in DASHBOARD["panels"] if panel["type"] != "row"]
TARGETS = [
    (f"{panel['id']}:{panel['title']}:{target['refId']}", target["expr"])
    for panel in PANELS
    for target in panel["targets"]
]
ROWS = [panel["title"] for panel in DASHBOARD["panels"] if panel["type"] == "row"]


def test_the_dashboard_is_a_current_grafana_dashboard() -> None:
    assert DASHBOARD["schemaVersion"] >= 39
    assert DASHBOARD["uid"] and DASHBOARD["title"]
    variables = {item["name"]: item for item in DASHBOARD["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"


def test_every_panel_and_query_uses_the_datasource_variable() -> None:
    templated = {"type": "prometheus", "uid": "${datasource}"}
    for panel in PANELS:
        assert panel["datasource"] == templated, panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == templated, panel["title"]
    for variable in DASHBOARD["templating"]["list"]:
        if variable["type"] == "query":
            assert variable["datasource"] == templated


def test_panel_ids_are_unique_and_panels_do_not_overlap() -> None:
    ids = [panel["id"] for panel in DASHBOARD["panels"]]
    assert len(ids) == len(set(ids))
    cells: set[tuple[int, int]] = set()
    for panel in DASHBOARD["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        area = {
            (x, y)
            for x in range(grid["x"], grid["x"] + grid["w"])
            for y in range(grid["y"], grid["y"] + grid["h"])
        }
        assert not area & cells, f"{panel['title']} overlaps another panel"
        cells |= area


def test_the_rows_cover_what_operators_look_for() -> None:
    text = " ".join(ROWS).lower()
    for topic in ("check", "shouldratelimit", "reason", "rate-limit", "jwks", "token cache"):
        assert topic in text, topic
    for topic in ("config", "quota store", "event loop", "envoy"):
        assert topic in text, topic


@pytest.mark.parametrize(("target", "expr"), TARGETS, ids=[target for target, _ in TARGETS])
def test_every_query_selects_metrics_labels_and_values_that_exist(
    target: str, expr: str, known: KnownMetrics
) -> None:
    assert list(problems(fill_grafana_variables(expr), known)) == []


def test_every_template_variable_query_selects_a_metric_that_exists(known: KnownMetrics) -> None:
    for variable in DASHBOARD["templating"]["list"]:
        if variable["type"] == "query":
            query = variable["query"]["query"]
            inner = query.removeprefix("label_values(").rsplit(",", 1)[0]
            assert list(problems(fill_grafana_variables(inner), known)) == [], variable["name"]


def test_promtool_parses_every_query(tmp_path: Path) -> None:
    promtool = find_binary("promtool")
    rules = [
        {"record": f"dashboard:query_{index}", "expr": fill_grafana_variables(expr)}
        for index, (_, expr) in enumerate(TARGETS)
    ]
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = subprocess.run(
        [promtool, "check", "rules", str(path)], capture_output=True, text=True, check=False
    )

    assert result.returncode == 0, result.stdout + result.stderr
