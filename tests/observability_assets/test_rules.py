"""deploy/observability/prometheus-rules.yml: well-formed alerts on metrics that exist, each with
a runbook; promtool accepts the file and its unit tests; the PrometheusRule and docker-compose
carry it."""

from __future__ import annotations

import re
import subprocess
from typing import Any

import pytest
import yaml

from tests.observability_assets import prometheus_rule
from tests.observability_assets.conftest import problems
from tests.observability_assets.known_metrics import KnownMetrics
from tests.support import REPO_ROOT, find_binary

RULES = prometheus_rule.RULES
DOCS = REPO_ROOT / "docs" / "observability.md"
ALERTS_TEST = REPO_ROOT / "tests" / "observability_assets" / "alerts_test.yml"
PROMETHEUS_CONFIG = REPO_ROOT / "compose" / "prometheus" / "prometheus.yml"


def load_rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


ALERTS = load_rules()


def heading_anchors(markdown: str) -> set[str]:
    """GitHub's anchors for the headings of a Markdown file."""
    anchors = set()
    for line in markdown.splitlines():
        match = re.match(r"#+\s+(.*)", line)
        if match:
            text = re.sub(r"[^\w\- ]", "", match.group(1).strip().lower())
            anchors.add(text.replace(" ", "-"))
    return anchors


def test_the_rules_are_alerts_with_unique_names() -> None:
    names = [rule.get("alert") for rule in ALERTS]

    assert all(names), "every rule is an alert (no recording rules)"
    assert len(names) == len(set(names))
    assert len(names) >= 20


@pytest.mark.parametrize("rule", ALERTS, ids=lambda rule: rule["alert"])
def test_every_alert_has_severity_summary_description_and_runbook(rule: dict[str, Any]) -> None:
    assert rule["labels"]["severity"] in {"critical", "warning"}
    annotations = rule["annotations"]
    assert annotations["summary"].strip()
    assert len(annotations["description"]) > 80
    assert annotations["runbook"] == f"docs/observability.md#{rule['alert'].lower()}"


@pytest.mark.parametrize("rule", ALERTS, ids=lambda rule: rule["alert"])
def test_every_runbook_is_a_section_of_the_docs(rule: dict[str, Any]) -> None:
    anchor = rule["annotations"]["runbook"].partition("#")[2]

    assert anchor in heading_anchors(DOCS.read_text())


@pytest.mark.parametrize("rule", ALERTS, ids=lambda rule: rule["alert"])
def test_expressions_select_only_metrics_labels_and_values_that_exist(
    rule: dict[str, Any], known: KnownMetrics
) -> None:
    assert list(problems(rule["expr"], known)) == []


def test_the_brute_force_alerts_use_the_lockout_and_the_failure_reasons(
    known: KnownMetrics,
) -> None:
    by_name = {rule["alert"]: rule for rule in ALERTS}
    lockout = by_name["AuthzBruteForceLockout"]["expr"]
    ratio = by_name["AuthzAuthenticationFailureRatioHigh"]["expr"]

    assert 'reason="locked_out"' in lockout
    for reason in ("bad_signature", "token_expired", "invalid_api_key", "unknown_key"):
        assert reason in ratio
    # Only reasons where a credential was presented: a missing one is not an attack.
    assert "missing_credentials" not in ratio and "authentication_required" not in ratio


def test_promtool_accepts_the_rules() -> None:
    promtool = find_binary("promtool")
    result = subprocess.run(
        [promtool, "check", "rules", str(RULES)], capture_output=True, text=True, check=False
    )

    assert result.returncode == 0, result.stdout + result.stderr


def test_the_alerts_fire_on_the_series_of_promtool_unit_tests() -> None:
    promtool = find_binary("promtool")
    result = subprocess.run(
        [promtool, "test", "rules", str(ALERTS_TEST)],
        capture_output=True,
        text=True,
        check=False,
        cwd=ALERTS_TEST.parent,
    )

    assert result.returncode == 0, result.stdout + result.stderr


def test_the_prometheus_rule_carries_the_same_groups() -> None:
    assert prometheus_rule.PROMETHEUS_RULE.read_text() == prometheus_rule.render(), (
        "stale: run python -m tests.observability_assets.prometheus_rule"
    )
    manifest = yaml.safe_load(prometheus_rule.PROMETHEUS_RULE.read_text())
    assert manifest["kind"] == "PrometheusRule"
    assert manifest["spec"]["groups"] == yaml.safe_load(RULES.read_text())["groups"]


def test_compose_prometheus_loads_the_rules_file() -> None:
    prometheus = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    compose = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())
    mounts = {}
    for volume in compose["services"]["prometheus"]["volumes"]:
        host, container = volume.split(":")[:2]
        mounts[container] = host

    assert prometheus["rule_files"], "rule_files"
    for path in prometheus["rule_files"]:
        assert mounts[path] == "./" + str(RULES.relative_to(REPO_ROOT))
