"""Which settings a reload applies and which only a restart applies, and what a reload left
waiting for a restart.

Every field of the schema is in exactly one of the two lists (an entry covers the fields under
it); tests/unit/config/test_reloadable.py fails when a new field is in neither, so a new
setting cannot silently be "read at start" while reloads report success. The same lists are
documented in docs/deployment.md ("What a reload applies").
"""

from __future__ import annotations

from collections.abc import Iterator
from types import UnionType
from typing import Union, get_args, get_origin

from pydantic import BaseModel

from authz_service.schema import Config

# Bound, built or opened once at start; a reload that changes them is reported, not applied.
START_ONLY: tuple[str, ...] = (
    "server.listen",
    "server.grace_period_s",
    "server.watch_config",
    "server.max_concurrent_rpcs",
    "server.max_receive_message_bytes",
    "server.event_loop",
    # Connection caps and timeouts are options of listeners built at start.
    "server.connections",
    "admin.connections",
    "telemetry.metrics.connections",
    "http_check.connections",
    # The files' contents are re-read when they change; which files, and whether client
    # certificates are asked for at all, is fixed at start.
    "server.tls.cert_file",
    "server.tls.key_file",
    "server.tls.client_ca_file",
    "admin.listen",
    "admin.tls",
    "telemetry.service_name",
    "telemetry.resource_attributes",
    "telemetry.tracing",
    "telemetry.metrics.listen",
    "telemetry.audit",
    "revocation",
    # The quota store and its connections (counters survive reloads).
    "rate_limit.store",
    "rate_limit.redis",
    "rate_limit.circuit_breaker",
    "rate_limit.local_over_limit_cache",
    "rate_limit.local_cache_max_entries",
    "rate_limit.memory_max_keys",
    "http_check.listen",
    "http_check.server",  # the HTTP server (aiohttp or granian) is chosen at start
    # The AuthZEN routes are added when the HTTP app is built.
    "http_check.authzen.enabled",
)

# Applied by a reload, for the next request, with no restart.
RELOADABLE: tuple[str, ...] = (
    "server.drain_delay_s",
    "server.tls.allowed_client_sans",
    "jwt_providers",
    # A provider whose settings change gets a new client and an empty cache.
    "introspection_providers",
    "api_keys",
    "mtls",
    "identity_headers",
    "policy_selection",
    "policies",
    "realm",
    "rate_limit.failure_mode",
    "rate_limit.config_dir",
    "rate_limit.domains",
    "rate_limit.shadow_mode",
    "rate_limit.brute_force",
    "check_quota",
    # Read by every usage report: buckets, TTL, shares, failure behaviour.
    "quota_service",
    # A token can be changed live; removing one (opening the port) needs a restart.
    "admin.token_hash",
    "telemetry.metrics.token_hash",
    "http_check.trusted_proxies",
    "http_check.trust_forwarded_client_cert",
    "http_check.endpoints",
    "http_check.max_concurrent_requests",
    "http_check.nginx",
    "http_check.envoy",
    "http_check.authzen.actions",
    "http_check.authzen.default_host",
    "token_cache_max_entries",
    "method_overrides",
    # Read from the compiled config by each request.
    "request_limits",
)

# Reloadable, except that going from a value to none waits for a restart.
REMOVAL_NEEDS_RESTART: tuple[str, ...] = ("admin.token_hash", "telemetry.metrics.token_hash")

_ABSENT = object()


def _section_model(annotation: object) -> type[BaseModel] | None:
    """The model class a field holds (also through `X | None`), or None for a plain value."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if get_origin(annotation) in (Union, UnionType):
        models = [arg for arg in get_args(annotation) if arg is not type(None)]
        if len(models) == 1:
            return _section_model(models[0])
    return None


def field_paths(model: type[BaseModel] = Config, prefix: str = "") -> Iterator[str]:
    """Every setting's dotted path, descending into sections (not into lists or maps)."""
    for name, info in model.model_fields.items():
        path = f"{prefix}{name}"
        yield path
        section = _section_model(info.annotation)
        if section is not None:
            yield from field_paths(section, path + ".")


def value_at(config: Config, path: str) -> object:
    value: object = config
    for part in path.split("."):
        if value is None:
            return _ABSENT
        value = getattr(value, part)
    return value


def restart_required(running: Config, new: Config) -> list[str]:
    """The start-only settings whose value in `new` differs from what `running` started with."""
    pending = []
    for path in START_ONLY:
        # No store yet: the first config with a rate_limit section builds it, on reload too.
        if path.startswith("rate_limit.") and running.rate_limit is None:
            continue
        if value_at(running, path) != value_at(new, path):
            pending.append(path)
    for path in REMOVAL_NEEDS_RESTART:
        if value_at(running, path) not in (None, _ABSENT) and value_at(new, path) is None:
            pending.append(path)
    return sorted(pending)
