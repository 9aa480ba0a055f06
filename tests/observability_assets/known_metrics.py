"""The metric names (with their label names and, where bounded, label values) that exist.

authz_service's come from the registry of a real, unstarted `AuthzServer`: the `Metrics` and
the `ServiceStateCollector` it wires (server.py), with a Redis quota store on redis-py's pool
(`connection: pool`) so that the store's breaker and pool figures are there. Envoy's come
from envoy_metric_names.txt, written from a real Envoy's /stats/prometheus by
envoy_metrics.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml
from prometheus_client.metrics import MetricWrapperBase

from authz_service.decisions import Outcome, Reason
from authz_service.server import AuthzServer
from tests.observability_assets.envoy_metrics import read_series
from tests.support import REPO_ROOT

# Labels Prometheus adds to every series it scrapes (target labels), and the series it makes.
TARGET_LABELS = frozenset({"job", "instance"})
SYNTHETIC = {"up": set[str]()}

# Suffixes of the samples prometheus_client exposes for one family, by type.
SAMPLE_SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "info": ("_info",),
}

# The servicers label their RPC metrics with these method names (grpc/*_servicer.py).
RPC_METHODS = frozenset({"Check", "ShouldRateLimit"})


@dataclass
class KnownMetrics:
    labels: dict[str, set[str]] = field(default_factory=dict)  # sample name -> label names
    values: dict[tuple[str, str], set[str]] = field(default_factory=dict)  # (name, label) -> values

    def add(self, name: str, labels: set[str]) -> None:
        self.labels.setdefault(name, set()).update(labels)


def service_metrics(workdir: Path) -> KnownMetrics:
    config = yaml.safe_load((REPO_ROOT / "config" / "local.yaml").read_text())
    rate_limit = config["rate_limit"]
    rate_limit["store"] = "redis"
    # Never connected: not started. Through redis-py's pool, whose figures (redis_pool_*) are
    # a superset of the default pipelined connection's (redis_commands_in_flight).
    rate_limit["redis"] = {"url": "redis://127.0.0.1:1/0", "connection": "pool"}
    rate_limit["config_dir"] = str(REPO_ROOT / "examples" / "ratelimit" / "domains")
    path = workdir / "authz.yaml"
    path.write_text(yaml.safe_dump(config))
    server = AuthzServer(path)
    known = KnownMetrics()
    for family in server.metrics.registry.collect():
        if family.samples:
            for sample in family.samples:
                known.add(sample.name, set(sample.labels))
                for label, value in sample.labels.items():
                    known.values.setdefault((sample.name, label), set()).add(value)
        else:  # a labelled metric nothing has touched yet: its samples by type
            # A collector's family (e.g. ServiceStateCollector's) knows its label names.
            names = getattr(family, "_labelnames", None)
            if names is None:
                holders = (server.metrics, server.quota_service.telemetry.metrics)
                names = _wrapper(holders, family.name)._labelnames
            extra = {"le"} if family.type == "histogram" else set()
            for suffix in SAMPLE_SUFFIXES[family.type]:
                labels = set(names)
                known.add(family.name + suffix, labels | (extra if suffix == "_bucket" else set()))
    known.values[("authz_check_decisions_total", "decision")] = {o.value for o in Outcome}
    known.values[("authz_check_decisions_total", "reason")] = {r.value for r in Reason}
    for name in list(known.labels):
        if "rpc" in known.labels[name]:
            known.values[(name, "rpc")] = set(RPC_METHODS)
    known.values[("authz_ratelimit_responses_total", "code")] = {"ok", "over_limit", "degraded"}
    known.values[("authz_ratelimit_limit_outcomes_total", "code")] = {"ok", "over_limit"}
    return known


def _wrapper(holders: tuple[object, ...], name: str) -> MetricWrapperBase:
    """The metric object of that name among the attributes of `holders` (Metrics, and the
    quota service's own metrics on the same registry)."""
    for holder in holders:
        for value in vars(holder).values():
            if isinstance(value, MetricWrapperBase) and value._name == name:
                return value
    raise AssertionError(f"no metric object for {name}")


def envoy_metrics() -> KnownMetrics:
    known = KnownMetrics()
    for name, labels in read_series().items():
        known.add(name, labels)
    return known
