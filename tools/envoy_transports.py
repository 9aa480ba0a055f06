"""The two ways Envoy asks the service, from one template (envoy/envoy.yaml).

- `grpc`: ext_authz calls Authorization/Check (the template as written): per-route
  context_extensions, Struct dynamic metadata, the peer certificate's attributes.
- `http`: ext_authz `http_service` calls the HTTP check endpoint (`http_check:`, served by
  granian): cheaper per call; one policy per listener, identity as headers, metadata as the
  answer's header strings. envoy/ext_authz_http.yaml holds what differs.

The rendered template is edited as YAML (like tools/quota_modes.py): each listener's ext_authz
filter gets the HTTP settings with `path_prefix: /envoy/<policy>`, its listener's policy; the
`authz_http` cluster is added; the metadata the rate-limit actions and access logs read are
renamed to the header names they arrive under. Routes keep their `disabled` ext_authz
overrides; a route naming another policy than its listener's cannot be expressed over HTTP and
is refused. The ratelimit filter keeps calling ShouldRateLimit over gRPC.
"""

from __future__ import annotations

import copy
import re
import string
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from authz_service.config.loader import load_config_file
from authz_service.schema import Config
from tools.envoy_bootstrap import EXT_AUTHZ, http_connection_managers

TRANSPORTS = ("grpc", "http")
HTTP_FRAGMENT = Path(__file__).resolve().parents[1] / "envoy" / "ext_authz_http.yaml"
MOUNT_ROOT = "/envoy"
# Set by the HTTP fragment's headers_to_add: the downstream address, as source.address on gRPC.
CLIENT_ADDRESS_HEADER = "x-envoy-client-address"
_DYNAMIC_METADATA = re.compile(r"%DYNAMIC_METADATA\(envoy\.filters\.http\.ext_authz:(\w+)\)%")


class TransportError(ValueError):
    """The template uses something the chosen transport cannot carry."""


def _policy(per_filter: Mapping[str, Any] | None) -> str | None:
    settings = (per_filter or {}).get(EXT_AUTHZ) or {}
    context = (settings.get("check_settings") or {}).get("context_extensions") or {}
    policy = context.get("policy")
    return None if policy is None else str(policy)


def listener_policy(manager: Mapping[str, Any]) -> str:
    """The one policy of a listener's ext_authz calls (its virtual hosts' context)."""
    found: set[str] = set()
    for host in manager["route_config"]["virtual_hosts"]:
        host_policy = _policy(host.get("typed_per_filter_config"))
        if host_policy is not None:
            found.add(host_policy)
        for route in host.get("routes") or []:
            route_policy = _policy(route.get("typed_per_filter_config"))
            if route_policy is not None and route_policy != host_policy:
                raise TransportError(
                    f"route {route.get('name', route['match'])!r} of listener "
                    f"{manager['stat_prefix']!r} names policy {route_policy!r}: over HTTP the "
                    "policy is per ext_authz filter (path_prefix), so per listener"
                )
    if len(found) != 1:
        raise TransportError(
            f"listener {manager['stat_prefix']!r}: one policy per listener over HTTP, "
            f"found {sorted(found) or 'none'}"
        )
    return found.pop()


def _drop_context_extensions(manager: dict[str, Any]) -> None:
    """context_extensions are gRPC-only (the path_prefix carries the policy): drop them, and
    per-filter entries left empty; `disabled: true` overrides stay."""
    for scope in manager["route_config"]["virtual_hosts"]:
        for holder in [scope, *(scope.get("routes") or [])]:
            per_filter = holder.get("typed_per_filter_config") or {}
            settings = per_filter.get(EXT_AUTHZ)
            if settings is None:
                continue
            settings.pop("check_settings", None)
            if set(settings) == {"@type"}:
                del per_filter[EXT_AUTHZ]
            if not per_filter:
                holder.pop("typed_per_filter_config", None)


def mount_path(policy: str) -> str:
    """The http_check mount (and Envoy path_prefix) of a policy."""
    return f"{MOUNT_ROOT}/{policy}"


def upstream_header_names(config: Config) -> list[str]:
    """Every header an allow answer may set for the upstream (the Cookie header with token
    cookies cut out included): Envoy copies only the names it is told."""
    names = config.identity_headers
    headers = [names.subject, names.roles, names.scopes, names.tier, names.auth_method]
    headers.append(names.issuer)
    for provider in config.jwt_providers:
        headers.extend(provider.claims_to_headers.values())
    return sorted({name for name in headers if name} | {"cookie"})


def metadata_headers(config: Config) -> dict[str, str]:
    """The gRPC path's metadata keys -> the answer headers that carry them over HTTP."""
    names = config.identity_headers
    mapping = {"principal": names.subject, "tier": names.tier}
    return {key: header for key, header in mapping.items() if header}


def _exact(names: list[str]) -> list[dict[str, Any]]:
    return [{"exact": name, "ignore_case": True} for name in names]


def _rename_metadata(node: Any, renames: Mapping[str, str]) -> Any:
    """Every reference to ext_authz's dynamic metadata, under its HTTP name."""
    if isinstance(node, dict):
        key = node.get("metadata_key")
        if isinstance(key, dict) and key.get("key") == EXT_AUTHZ:
            for step in key.get("path") or []:
                if step.get("key") in renames:
                    step["key"] = renames[step["key"]]
        return {name: _rename_metadata(value, renames) for name, value in node.items()}
    if isinstance(node, list):
        return [_rename_metadata(item, renames) for item in node]
    if isinstance(node, str):

        def rename(match: re.Match[str]) -> str:
            name = renames.get(match.group(1), match.group(1))
            return f"%DYNAMIC_METADATA({EXT_AUTHZ}:{name})%"

        return _DYNAMIC_METADATA.sub(rename, node)
    return node


def _http_settings(grpc: Mapping[str, Any], http: Mapping[str, Any]) -> dict[str, Any]:
    """The template's filter settings with its gRPC service replaced by the fragment's HTTP
    one: every other setting carries over; allowed_headers are the union of both lists."""
    settings = {key: copy.deepcopy(value) for key, value in grpc.items() if key != "grpc_service"}
    template_headers = (settings.pop("allowed_headers", None) or {}).get("patterns") or []
    settings.update(copy.deepcopy(dict(http)))
    patterns = settings["allowed_headers"]["patterns"]
    patterns.extend(p for p in template_headers if p not in patterns)
    timeout = (grpc.get("grpc_service") or {}).get("timeout")
    if timeout is not None:
        settings["http_service"]["server_uri"]["timeout"] = timeout
    return settings


def http_fragment(values: Mapping[str, str]) -> dict[str, Any]:
    fragment: dict[str, Any] = yaml.safe_load(
        string.Template(HTTP_FRAGMENT.read_text()).substitute(values)
    )
    return fragment


def apply_transport(
    rendered: str, transport: str, values: Mapping[str, str], service_config: Path
) -> str:
    """The rendered bootstrap speaking `transport` to the service (grpc: unchanged)."""
    if transport not in TRANSPORTS:
        raise TransportError(f"transport {transport!r}: one of {', '.join(TRANSPORTS)}")
    if transport == "grpc":
        return rendered
    if values.get("AUTHZ_TLS") == "true":
        raise TransportError("AUTHZ_TLS=true: the HTTP check endpoint serves plain HTTP only")
    service = load_config_file(service_config).config
    fragment = http_fragment(values)
    response = fragment["ext_authz"]["http_service"]["authorization_response"]
    response["allowed_upstream_headers"]["patterns"] = _exact(upstream_header_names(service))
    renames = metadata_headers(service)
    response["dynamic_metadata_from_headers"]["patterns"] = _exact(sorted(renames.values()))
    config: dict[str, Any] = yaml.safe_load(rendered)
    for manager in http_connection_managers(config):
        for http_filter in manager["http_filters"]:
            if http_filter["name"] != EXT_AUTHZ:
                continue
            typed = http_filter["typed_config"]
            if typed.pop("include_peer_certificate", False):
                # The peer certificate travels as x-forwarded-client-cert, which Envoy sets
                # itself (a client's copy is dropped): the service reads it when it trusts it.
                manager["forward_client_cert_details"] = "SANITIZE_SET"
                manager["set_current_client_cert_details"] = {"subject": True, "uri": True}
            http_filter["typed_config"] = _http_settings(typed, fragment["ext_authz"])
            http_filter["typed_config"]["http_service"]["path_prefix"] = mount_path(
                listener_policy(manager)
            )
            _drop_context_extensions(manager)
    config["static_resources"]["clusters"].append(fragment["cluster"])
    config = _rename_metadata(config, renames)
    header = "# Transport 'http' (tools/envoy_transports.py) of a render of envoy/envoy.yaml.\n"
    return header + yaml.safe_dump(config, sort_keys=False)


def http_check_mounts(rendered: str) -> list[dict[str, Any]]:
    """The `http_check.endpoints` an HTTP-transport render calls: one per path_prefix."""
    config = yaml.safe_load(rendered)
    prefixes: dict[str, None] = {}
    for manager in http_connection_managers(config):
        for http_filter in manager["http_filters"]:
            service = http_filter.get("typed_config", {}).get("http_service")
            if http_filter["name"] == EXT_AUTHZ and service is not None:
                prefixes[service["path_prefix"]] = None
    return [
        {
            "path": prefix,
            "integration": "envoy",
            "context": {"policy": prefix.removeprefix(MOUNT_ROOT + "/")},
        }
        for prefix in prefixes
    ]


def http_check_section(
    listen: str, server: str = "granian", service_config: Path | None = None
) -> dict[str, Any]:
    """The service's `http_check:` for an HTTP-transport Envoy: its mounts are the render's
    path prefixes (one per listener policy), served by `server`."""
    from tools.render_envoy import LOCAL_SERVICE_CONFIG, render_mode

    rendered = render_mode(
        {}, service_config=service_config or LOCAL_SERVICE_CONFIG, transport="http"
    )
    return {
        "listen": listen,
        "server": server,
        "endpoints": http_check_mounts(rendered),
        "envoy": {"client_address_header": CLIENT_ADDRESS_HEADER},
    }
