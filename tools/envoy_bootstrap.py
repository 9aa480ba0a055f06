"""Walking a rendered Envoy bootstrap (parsed YAML) for the passes that edit it.

tools/envoy_transports.py (gRPC or HTTP ext_authz) and tools/quota_modes.py (classic, one-call,
RLQS) both rewrite the HTTP filter chains of every listener; they find them here.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

EXT_AUTHZ = "envoy.filters.http.ext_authz"


def http_connection_managers(config: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The typed config of every HTTP connection manager of the static listeners."""
    for listener in config["static_resources"]["listeners"]:
        for chain in listener["filter_chains"]:
            for network_filter in chain["filters"]:
                typed = network_filter.get("typed_config") or {}
                if "http_filters" in typed:
                    yield typed
