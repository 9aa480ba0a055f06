"""Prometheus metrics: the four golden signals for Check and ShouldRateLimit, and the state of
the JWKS caches, the token cache, config reloads and rate limits.

Label values are bounded: decisions, reason codes, policy and rule names from the config,
rate-limit names from the config — never user ids, tokens or raw paths. State that the
service already keeps (JWKS fetch counts, token cache hits, reloads) is read at scrape time by
a collector, so the request path does not pay for it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Mapping, Sized
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily
from prometheus_client.registry import Collector

from authz_service.decisions import Decision
from authz_service.ratelimit.results import Code, RateLimitResult
from authz_service.telemetry.audit_log import AuditLog

LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.rpc_duration = Histogram(
            "authz_rpc_duration_seconds",
            "Time to answer one RPC, by method.",
            ["rpc"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.rpc_errors = Counter(
            "authz_rpc_errors_total",
            "RPCs that ended with a gRPC error status, by method and code.",
            ["rpc", "code"],
            registry=r,
        )
        self.in_flight = Gauge(
            "authz_rpc_in_flight", "RPCs being handled now, by method.", ["rpc"], registry=r
        )
        self.check_decisions = Counter(
            "authz_check_decisions_total",
            "Check decisions by outcome, reason code and policy.",
            ["decision", "reason", "policy"],
            registry=r,
        )
        self.shadow_decisions = Counter(
            "authz_shadow_decisions_total",
            "Would-be decisions of shadow rules and policies (never enforced), by policy, "
            "the rule that would decide, its outcome, and whether it agrees with the real one.",
            ["policy", "rule", "decision", "agrees"],
            registry=r,
        )
        self.ratelimit_responses = Counter(
            "authz_ratelimit_responses_total",
            "ShouldRateLimit answers by domain and overall code.",
            ["domain", "code"],
            registry=r,
        )
        self.ratelimit_limits = Counter(
            "authz_ratelimit_limit_outcomes_total",
            "Per-descriptor outcomes by the limit's configured name (or 'unnamed').",
            ["domain", "limit", "code"],
            registry=r,
        )
        # Labelled children resolved once: `.labels()` on every request is measurable.
        self.check_duration = self.rpc_duration.labels("Check")
        self.check_in_flight = self.in_flight.labels("Check")
        self._decision_children: dict[tuple[str, str, str], Counter] = {}
        self._children: dict[tuple[object, ...], Counter] = {}
        self.event_loop_lag = Gauge(
            "authz_event_loop_lag_seconds",
            "How late the event loop ran a timer at the last probe (saturation).",
            registry=r,
        )

    def decision_counter(self, decision: Decision) -> Counter:
        key = (decision.outcome.value, decision.reason.value, decision.policy or "-")
        child = self._decision_children.get(key)
        if child is None:
            child = self._decision_children[key] = self.check_decisions.labels(*key)
        return child

    def observe_shadow(self, decision: Decision) -> None:
        shadow = decision.shadow
        if shadow is None:
            return
        agrees = "true" if shadow.agrees_with(decision) else "false"
        key = (shadow.policy, shadow.rule or "-", shadow.outcome.value, agrees)
        self._child(self.shadow_decisions, key).inc()

    def observe_rate_limit(self, domain: str, result: RateLimitResult) -> None:
        code = "over_limit" if result.over_limit else ("degraded" if result.degraded else "ok")
        self._child(self.ratelimit_responses, (domain, code)).inc()
        for status in result.statuses:
            if status.current_limit is None:
                continue
            name = status.current_limit.name or "unnamed"
            label = "over_limit" if status.code is Code.OVER_LIMIT else "ok"
            self._child(self.ratelimit_limits, (domain, name, label)).inc()

    def _child(self, metric: Counter, labels: tuple[str, ...]) -> Counter:
        """A labelled child, resolved once (label values come from config: bounded)."""
        key = (id(metric), *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    async def probe_event_loop(self, interval: float = 0.5) -> None:
        """Sleep `interval` repeatedly; the overshoot is the loop's lag."""
        while True:
            start = time.perf_counter()
            await asyncio.sleep(interval)
            self.event_loop_lag.set(max(0.0, time.perf_counter() - start - interval))

    def add_state_collector(self, collector: Collector) -> None:
        self.registry.register(collector)


class ReloadState(Protocol):
    """What the config reloader reports (config/reload.py, ReloadStatus)."""

    @property
    def version(self) -> str: ...
    @property
    def loaded_at(self) -> float: ...
    @property
    def reloads(self) -> int: ...
    @property
    def failures(self) -> int: ...
    @property
    def restart_required(self) -> tuple[str, ...]: ...


class JwksCacheState(Protocol):
    """What a provider's JWKS cache counts (authn/jwks.py, JwksCache)."""

    @property
    def fetch_count(self) -> int: ...
    @property
    def failure_count(self) -> int: ...
    @property
    def keys(self) -> Sized: ...


class TokenCacheState(Sized, Protocol):
    """What the verified-token cache counts (authn/token_cache.py, TokenCache)."""

    @property
    def hits(self) -> int: ...
    @property
    def misses(self) -> int: ...


class ServiceStateCollector(Collector):
    """Reads counters the service keeps anyway, at scrape time, through the callables the
    process wiring passes in (so this module knows neither the reloader nor the compiled
    config): the reload status, (provider name, JWKS cache) pairs, the token cache of the
    config in force, the quota store's `stats()` and its outage counts."""

    def __init__(
        self,
        reload_status: Callable[[], ReloadState],
        jwks_caches: Callable[[], Iterable[tuple[str, JwksCacheState]]],
        token_cache: Callable[[], TokenCacheState],
        store_stats: Callable[[], Mapping[str, float]] = dict,
        store_outages: Callable[[], Mapping[str, int]] = dict,
    ) -> None:
        self._reload_status = reload_status
        self._jwks_caches = jwks_caches
        self._token_cache = token_cache
        self._store_stats = store_stats
        self._store_outages = store_outages

    def collect(self) -> Iterable[CounterMetricFamily | GaugeMetricFamily | InfoMetricFamily]:
        status = self._reload_status()
        reloads = CounterMetricFamily(
            "authz_config_reloads", "Config reloads by result.", labels=["result"]
        )
        reloads.add_metric(["success"], status.reloads)
        reloads.add_metric(["failure"], status.failures)
        yield reloads
        info = InfoMetricFamily("authz_config", "The config version in force.")
        info.add_metric([], {"version": status.version})
        yield info
        loaded = GaugeMetricFamily(
            "authz_config_loaded_timestamp_seconds", "When the running config was loaded."
        )
        loaded.add_metric([], status.loaded_at)
        yield loaded
        restart = GaugeMetricFamily(
            "authz_config_restart_required",
            "1 per start-only setting the config in force changed: running with the old value "
            "until a restart.",
            labels=["setting"],
        )
        for setting in status.restart_required:
            restart.add_metric([setting], 1)
        yield restart

        fetches = CounterMetricFamily(
            "authz_jwks_fetches",
            "JWKS fetches by provider and result.",
            labels=["provider", "result"],
        )
        keys = GaugeMetricFamily(
            "authz_jwks_keys", "Signing keys held per provider.", labels=["provider"]
        )
        for name, jwks in self._jwks_caches():
            fetches.add_metric([name, "success"], jwks.fetch_count - jwks.failure_count)
            fetches.add_metric([name, "failure"], jwks.failure_count)
            keys.add_metric([name], len(jwks.keys))
        yield fetches
        yield keys

        cache = self._token_cache()
        lookups = CounterMetricFamily(
            "authz_token_cache_lookups",
            "Verified-token cache lookups by result (resets on config reload).",
            labels=["result"],
        )
        lookups.add_metric(["hit"], cache.hits)
        lookups.add_metric(["miss"], cache.misses)
        yield lookups
        size = GaugeMetricFamily("authz_token_cache_entries", "Verified tokens cached.")
        size.add_metric([], len(cache))
        yield size

        tasks = GaugeMetricFamily("authz_asyncio_tasks", "asyncio tasks alive (leak check).")
        try:
            tasks.add_metric([], len(asyncio.all_tasks()))
        except RuntimeError:  # collected outside the service's event loop (tools, tests)
            tasks.add_metric([], 0)
        yield tasks

        store = GaugeMetricFamily(
            "authz_quota_store",
            "Quota store state (breaker open = 1, pool use).",
            labels=["metric"],
        )
        for name, value in sorted(self._store_stats().items()):
            store.add_metric([name], value)
        yield store
        unavailable = CounterMetricFamily(
            "authz_quota_store_unavailable",
            "Calls answered without the quota store (it failed or its breaker was open), by use:"
            " rate_limit, lockout, replay. Only the start and end of an outage are logged.",
            labels=["use"],
        )
        for use, count in sorted(self._store_outages().items()):
            unavailable.add_metric([use], count)
        yield unavailable


class AuditLogCollector(Collector):
    """The audit log's own counters, read at scrape time: what it lost and what it holds."""

    def __init__(self, audit: AuditLog) -> None:
        self._audit = audit

    def collect(self) -> Iterable[CounterMetricFamily | GaugeMetricFamily]:
        audit = self._audit
        dropped = CounterMetricFamily(
            "authz_audit_records_dropped",
            "Audit records lost: queue_full (the output could not keep up), write_failed.",
            labels=["reason"],
        )
        dropped.add_metric(["queue_full"], audit.dropped_full)
        dropped.add_metric(["write_failed"], audit.dropped_write_failed)
        yield dropped
        failures = CounterMetricFamily(
            "authz_audit_write_failures", "Writes to the audit output that failed."
        )
        failures.add_metric([], audit.write_failures)
        yield failures
        queued = GaugeMetricFamily(
            "authz_audit_queue_bytes", "Audit records accepted and not yet written, in bytes."
        )
        queued.add_metric([], audit.queued_bytes)
        yield queued
        limit = GaugeMetricFamily(
            "authz_audit_queue_limit_bytes", "telemetry.audit.max_queue_bytes (0: audit off)."
        )
        limit.add_metric([], audit.max_queue_bytes if audit.enabled else 0)
        yield limit
