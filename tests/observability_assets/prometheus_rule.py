"""deploy/observability/prometheus-rules.yml as a Prometheus Operator PrometheusRule.

    python -m tests.observability_assets.prometheus_rule      # rewrites the PrometheusRule

The plain rules file is the source (docker-compose loads it, promtool checks it); the
PrometheusRule carries the same groups for clusters run by the Prometheus Operator.
test_rules.py fails when the two differ.
"""

from __future__ import annotations

import sys
from typing import Any

import yaml

from tests.support import REPO_ROOT

RULES = REPO_ROOT / "deploy" / "observability" / "prometheus-rules.yml"
PROMETHEUS_RULE = REPO_ROOT / "deploy" / "kubernetes" / "observability" / "prometheus-rule.yaml"

HEADER = """\
# GENERATED from deploy/observability/prometheus-rules.yml by
# `python -m tests.observability_assets.prometheus_rule`: do not edit, change the rules file.
#
# The alerting rules of docs/observability.md for the Prometheus Operator:
#   kubectl apply -f deploy/kubernetes/observability/prometheus-rule.yaml
# The operator picks up PrometheusRules matching its ruleSelector: with kube-prometheus-stack
# that is usually the label `release: <the Helm release name>`; add it if yours needs it.
"""


class _Literal(str):
    """A multi-line string written as a YAML block (`|`), as in the rules file."""


def _literal(dumper: yaml.SafeDumper, value: _Literal) -> yaml.ScalarNode:
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|")


class _Dumper(yaml.SafeDumper):
    pass


_Dumper.add_representer(_Literal, _literal)


def _blocks(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _blocks(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_blocks(item) for item in value]
    if isinstance(value, str) and "\n" in value:
        return _Literal(value)
    return value


def render() -> str:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    manifest = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {
            "name": "authz-service",
            "namespace": "authz",
            "labels": {
                "app.kubernetes.io/name": "authz-service",
                "app.kubernetes.io/part-of": "authz-gateway",
            },
        },
        "spec": {"groups": groups},
    }
    body = yaml.dump(_blocks(manifest), Dumper=_Dumper, sort_keys=False, width=100)
    return HEADER + body


def main() -> int:
    PROMETHEUS_RULE.parent.mkdir(parents=True, exist_ok=True)
    PROMETHEUS_RULE.write_text(render())
    return 0


if __name__ == "__main__":
    sys.exit(main())
