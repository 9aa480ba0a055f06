"""Metrics, spans and audit lines of the quota service (RLQS).

Envoy's rate_limit_quota filter keeps no stats of its own (1.40): the requests it allowed and
denied are only known from its usage reports, so they are counted here. Label values are
bounded (domains and limit names from the config, strategies, reasons); bucket values (users,
addresses) only reach the audit log, which records each change of an Envoy's assignment (not
every 5 s refresh) and each stream's start and end.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass

from opentelemetry import trace
from opentelemetry.trace import Span
from prometheus_client import Counter, Gauge, Histogram

from authz_service.ratelimit.quota_assignments import Assignment, BucketUsage
from authz_service.telemetry import tracing
from authz_service.telemetry.audit import ECS_VERSION
from authz_service.telemetry.audit_log import AuditLog
from authz_service.telemetry.metrics import LATENCY_BUCKETS, Metrics

SERVICE = "envoy.service.rate_limit_quota.v3.RateLimitQuotaService"
METHOD = "StreamRateLimitQuotas"


class QuotaMetrics:
    def __init__(self, metrics: Metrics) -> None:
        r = metrics.registry
        self.streams = Gauge(
            "authz_rlqs_streams", "RLQS streams open (one per Envoy filter).", registry=r
        )
        self.reports = Counter(
            "authz_rlqs_reports_total", "Usage reports received, by domain.", ["domain"], registry=r
        )
        self.report_duration = Histogram(
            "authz_rlqs_report_duration_seconds",
            "Time to answer one usage report (store round trips included).",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.requests = Counter(
            "authz_rlqs_requests_total",
            "Requests Envoys reported for RLQS buckets, by domain, limit ('none': no limit) and "
            "outcome (allowed, denied): Envoy's filter has no stats of its own.",
            ["domain", "limit", "outcome"],
            registry=r,
        )
        self.assignments = Counter(
            "authz_rlqs_assignments_total",
            "Assignments sent (refreshes included), by domain, strategy and why.",
            ["domain", "strategy", "why"],
            registry=r,
        )
        self.rebalances = Counter(
            "authz_rlqs_rebalances_total",
            "Assignments that changed what an Envoy enforces for a bucket, by domain.",
            ["domain"],
            registry=r,
        )


class QuotaTelemetry:
    """What the quota service reports; every part optional (no metrics, no audit: no-ops)."""

    def __init__(self, metrics: Metrics | None = None, audit: AuditLog | None = None) -> None:
        self._metrics = QuotaMetrics(metrics) if metrics is not None else None
        self._audit = audit if audit is not None and audit.enabled else None

    @property
    def metrics(self) -> QuotaMetrics | None:
        """The metric objects, registered on the service's registry (None without one)."""
        return self._metrics

    def stream_opened(self, envoy: str, peer: str) -> None:
        if self._metrics is not None:
            self._metrics.streams.inc()
        self._record(StreamRecord(time.time(), envoy, peer, "start", 0))

    def stream_closed(self, envoy: str, peer: str, buckets: int) -> None:
        if self._metrics is not None:
            self._metrics.streams.dec()
        self._record(StreamRecord(time.time(), envoy, peer, "end", buckets))

    @contextlib.contextmanager
    def report_span(self, envoy: str, domain: str, buckets: int) -> Iterator[Span]:
        """A span per usage report (streams carry no trace context: each is a root)."""
        started = time.perf_counter()
        attributes = {"authz.rlqs.envoy": envoy, "authz.ratelimit.domain": domain}
        with tracing.server_span(SERVICE, METHOD, None, attributes) as span:
            span.set_attribute("authz.rlqs.buckets", buckets)
            yield span
        if self._metrics is not None:
            self._metrics.reports.labels(domain).inc()
            self._metrics.report_duration.observe(time.perf_counter() - started)

    def usage(self, domain: str, limit_name: str | None, usage: BucketUsage) -> None:
        """`limit_name`: the bucket's limit ("" unnamed), None when no limit governs it."""
        if self._metrics is None:
            return
        limit = "none" if limit_name is None else (limit_name or "unnamed")
        if usage.allowed:
            self._metrics.requests.labels(domain, limit, "allowed").inc(usage.allowed)
        if usage.denied:
            self._metrics.requests.labels(domain, limit, "denied").inc(usage.denied)

    def assigned(self, domain: str, sent: Assignment) -> None:
        if self._metrics is not None:
            self._metrics.assignments.labels(domain, sent.strategy.value, sent.why.value).inc()

    def rebalanced(
        self, domain: str, envoy: str, sent: Assignment, previous: Assignment | None
    ) -> None:
        """An Envoy is told to enforce something new for a bucket (its first assignment too)."""
        if self._metrics is not None:
            self._metrics.rebalances.labels(domain).inc()
        span = trace.get_current_span()
        if span.is_recording():
            span.add_event(
                "authz.rlqs.rebalance",
                {
                    "authz.rlqs.envoy": envoy,
                    "authz.rlqs.strategy": sent.strategy.value,
                    "authz.rlqs.share": sent.share,
                    "authz.rlqs.previous_share": previous.share if previous else -1.0,
                },
            )
        self._record(AssignmentRecord(time.time(), domain, envoy, sent, previous))

    def _record(self, record: StreamRecord | AssignmentRecord) -> None:
        if self._audit is not None:
            self._audit.offer(record)


def _head(at: float, action: str) -> dict[str, object]:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(at)) + f".{int(at % 1 * 1000):03d}Z"
    return {
        "@timestamp": stamp,
        "ecs": {"version": ECS_VERSION},
        "event": {"kind": "event", "category": ["configuration"], "type": ["change"],
                  "action": action, "outcome": "success"},
    }  # fmt: skip


@dataclass(frozen=True, slots=True)
class StreamRecord:
    at: float
    envoy: str
    peer: str
    phase: str  # start | end
    buckets: int

    @property
    def nbytes(self) -> int:
        return 512 + len(self.envoy) + len(self.peer)

    def line(self) -> str:
        document = _head(self.at, f"rlqs-stream-{self.phase}")
        document["rlqs"] = {"envoy": self.envoy, "peer": self.peer, "buckets": self.buckets}
        return json.dumps(document, separators=(",", ":"))


@dataclass(frozen=True, slots=True)
class AssignmentRecord:
    at: float
    domain: str
    envoy: str
    sent: Assignment
    previous: Assignment | None

    @property
    def nbytes(self) -> int:
        entries = sum(len(k) + len(v) + 64 for k, v in self.sent.bucket_id)
        return 768 + len(self.domain) + len(self.envoy) + entries

    def line(self) -> str:
        sent, previous = self.sent, self.previous
        rlqs: dict[str, object] = {
            "domain": self.domain,
            "bucket": [list(entry) for entry in sorted(sent.bucket_id)],
            "envoy": self.envoy,
            "strategy": sent.strategy.value,
            "why": sent.why.value,
            "limit": sent.limit_name,
            "share": round(sent.share, 3),
            "previous_share": round(previous.share, 3) if previous is not None else None,
        }
        if sent.token_bucket is not None:
            bucket = sent.token_bucket
            rlqs["token_bucket"] = {
                "max_tokens": bucket.max_tokens,
                "tokens_per_fill": bucket.tokens_per_fill,
                "fill_interval_s": bucket.fill_interval_s,
            }
        document = _head(self.at, "rlqs-assignment")
        document["rlqs"] = rlqs
        return json.dumps(document, separators=(",", ":"))
