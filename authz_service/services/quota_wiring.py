"""Build the quota service for a process: its usage store (the `rate_limit.store` backend,
read at start like the quota store) and the config it reads on every report (a reload
applies new limits and `quota_service` settings to the next report)."""

from __future__ import annotations

from collections.abc import Callable

from authz_service.ratelimit.outages import StoreOutages
from authz_service.ratelimit.usage_factory import build_usage_store
from authz_service.schema import Config, RateLimitSettings
from authz_service.services.compiled_config import CompiledConfig
from authz_service.services.quota_service import QuotaConfig, QuotaShareService
from authz_service.telemetry.audit_log import AuditLog
from authz_service.telemetry.metrics import Metrics
from authz_service.telemetry.quota_telemetry import QuotaTelemetry


def quota_config(compiled: CompiledConfig) -> QuotaConfig | None:
    """What a report reads from the config in force: None without rate limits."""
    limiter = compiled.limiter
    config = compiled.loaded.config
    if limiter is None or config.rate_limit is None:
        return None
    return QuotaConfig(limiter.config, config.quota_service, config.rate_limit.shadow_mode)


def build_quota_service(
    compiled: Callable[[], CompiledConfig],
    config: Config,
    metrics: Metrics | None = None,
    audit: AuditLog | None = None,
    outages: StoreOutages | None = None,
) -> QuotaShareService:
    """Never connects: Redis being down at start must not stop the service."""
    store = build_usage_store(config.rate_limit or RateLimitSettings())
    return QuotaShareService(
        lambda: quota_config(compiled()),
        store,
        telemetry=QuotaTelemetry(metrics, audit),
        outages=outages,
    )
