"""The three quota modes of the gateway, from one Envoy template and one service config.

- `classic`: Envoy's ratelimit filter asks ShouldRateLimit on every request (envoy/envoy.yaml
  as written): exact counters, one more gRPC round trip per request.
- `one-call`: no Envoy quota filter; Check enforces the limits itself (`check_quota`, built
  from the config's `quota_service` descriptors): one round trip for auth, RBAC and quota.
- `rlqs`: Envoy's rate_limit_quota filters (rendered by authz_service.cli.rlqs_render from
  `quota_service`) enforce locally the share this service assigns each Envoy, reporting usage
  every 5 s: no quota call on the request path, shares within a tolerance.

The template is rendered as usual, then edited as YAML (like tests/faults/replicas.py): the
ratelimit filter and the routes' `rate_limits` go, the RLQS filters come in after ext_authz,
disabled where the ratelimit filter was (/healthz).
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from authz_service.cli.rlqs_render import quota_filters
from authz_service.config.loader import load_config_file
from tools.envoy_bootstrap import EXT_AUTHZ, http_connection_managers

MODES = ("classic", "one-call", "rlqs")
RATELIMIT = "envoy.filters.http.ratelimit"
_DISABLED = {"@type": "type.googleapis.com/envoy.config.route.v3.FilterConfig", "disabled": True}


def _routes(manager: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for host in (manager.get("route_config") or {}).get("virtual_hosts") or []:
        yield from host.get("routes") or []


def apply_quota_mode(rendered: str, mode: str, service_config: Path) -> str:
    """The rendered bootstrap in `mode` (classic: unchanged)."""
    if mode not in MODES:
        raise ValueError(f"quota mode {mode!r}: one of {', '.join(MODES)}")
    if mode == "classic":
        return rendered
    config: dict[str, Any] = yaml.safe_load(rendered)
    rlqs = quota_filters(load_config_file(service_config).config) if mode == "rlqs" else []
    for manager in http_connection_managers(config):
        names = [f["name"] for f in manager["http_filters"]]
        if RATELIMIT not in names:
            continue
        filters = [f for f in manager["http_filters"] if f["name"] != RATELIMIT]
        at = [f["name"] for f in filters].index(EXT_AUTHZ) + 1
        manager["http_filters"] = filters[:at] + copy.deepcopy(rlqs) + filters[at:]
        for route in _routes(manager):
            (route.get("route") or {}).pop("rate_limits", None)
            per_filter = route.get("typed_per_filter_config") or {}
            if per_filter.pop(RATELIMIT, None) is not None:
                for quota_filter in rlqs:
                    per_filter[quota_filter["name"]] = dict(_DISABLED)
    header = f"# Quota mode {mode!r} (tools/quota_modes.py) of a render of envoy/envoy.yaml.\n"
    return header + yaml.safe_dump(config, sort_keys=False)


def one_call_section(service_config: Path) -> dict[str, Any]:
    """`check_quota` with the config's quota_service domain and descriptors (one-call mode)."""
    quota = load_config_file(service_config).config.quota_service
    if quota is None:
        raise ValueError(f"{service_config}: no quota_service section to take descriptors from")
    return {
        "domain": quota.domain,
        "descriptors": [d.model_dump(exclude_none=True) for d in quota.descriptors],
    }
