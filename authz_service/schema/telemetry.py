"""The `telemetry:` section: traces, the metrics port, the audit log. Read at start."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from authz_service.schema.base import Sha256Hash, Strict
from authz_service.schema.server import ConnectionLimits


class TracingSettings(Strict):
    """OpenTelemetry traces, continuing Envoy's trace (traceparent in gRPC metadata)."""

    # "none": a no-op tracer and no per-request cost beyond a flag check.
    exporter: Literal["none", "otlp_grpc", "otlp_http"] = "none"
    # e.g. http://jaeger:4317 (gRPC) or http://jaeger:4318/v1/traces (HTTP)
    endpoint: str | None = None
    sampling_ratio: float = Field(default=1.0, ge=0.0, le=1.0)
    # Record sha256(principal)[:16] instead of the principal in spans.
    hash_principal: bool = False

    @model_validator(mode="after")
    def _endpoint_for_exporter(self) -> TracingSettings:
        if self.exporter != "none" and not self.endpoint:
            raise ValueError(f"tracing exporter {self.exporter!r} needs an 'endpoint'")
        return self


class MetricsSettings(Strict):
    """Prometheus /metrics, /healthz and /readyz on their own HTTP port."""

    # None disables the port. Loopback by default.
    listen: str | None = "127.0.0.1:9102"
    # "sha256:<hex>" of a bearer token required on /metrics (health stays open).
    token_hash: Sha256Hash | None = None
    # A port of its own with a cap of its own: probes still pass while the check ports are full.
    connections: ConnectionLimits = ConnectionLimits(max_connections=32)


class AuditSettings(Strict):
    """One JSON line per decision, ECS field names (see docs/observability.md)."""

    enabled: bool = True
    # "stdout", "stderr" or a file path (appended to).
    output: str = "stdout"
    # Records accepted but not yet written, in bytes (a record holds the few request fields
    # its line needs, never the headers). Bounds memory while the output stalls.
    max_queue_bytes: int = Field(default=8 * 1024 * 1024, ge=64 * 1024)
    # A full queue: "drop" the record (counted in authz_audit_records_dropped_total), or
    # "refuse" the request (503 audit_unavailable; failed writes are then retried, not dropped).
    when_full: Literal["drop", "refuse"] = "drop"


class TelemetrySettings(Strict):
    """Read at start; changing it needs a restart."""

    service_name: str = "authz-service"
    resource_attributes: dict[str, str] = Field(default_factory=dict)
    tracing: TracingSettings = TracingSettings()
    metrics: MetricsSettings = MetricsSettings()
    audit: AuditSettings = AuditSettings()
