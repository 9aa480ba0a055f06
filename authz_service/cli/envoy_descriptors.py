"""The rate-limit descriptors an Envoy config can produce, read through envoy-data-plane's
typed model of the Envoy API (not by walking YAML by hand).

envoy-data-plane is a development/operations dependency (0.8 s to import): this module is
only used by `authz-service check-descriptors`, never on the request path.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from authz_service.errors import ConfigError
from authz_service.ratelimit.coverage import ANY, DescriptorShape, ShapeEntry

RATELIMIT_FILTER = "envoy.filters.http.ratelimit"
# A `${NAME}` placeholder of an unrendered envoy/ template (not inside a YAML comment).
TEMPLATE_PLACEHOLDER = re.compile(r"^[^#\n]*?(\$\{[A-Za-z_][A-Za-z0-9_]*\})", re.MULTILINE)


class EnvoyConfigError(ConfigError):
    """An Envoy bootstrap file that cannot be read as one; the message names the file."""


def _type_urls(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "@type" and isinstance(value, str):
                yield value
            else:
                yield from _type_urls(value)
    elif isinstance(node, list):
        for item in node:
            yield from _type_urls(item)


def load_bootstrap(path: Path) -> Any:
    """Parse a (rendered) Envoy bootstrap into envoy-data-plane's model."""
    try:
        from envoy_data_plane.envoy.config.bootstrap.v3 import Bootstrap
    except ImportError:
        raise EnvoyConfigError(
            "check-descriptors needs envoy-data-plane: pip install 'authz-service[dev]'"
        ) from None
    try:
        text = path.read_text()
    except OSError as error:
        raise EnvoyConfigError(f"{path}: cannot read: {error.strerror or error}") from None
    placeholders = sorted(set(TEMPLATE_PLACEHOLDER.findall(text)))
    if placeholders:
        # envoy/envoy.yaml itself: ${NAME} is not YAML a parser can make sense of.
        raise EnvoyConfigError(
            f"{path} is a template ({', '.join(placeholders[:3])}"
            f"{', ...' if len(placeholders) > 3 else ''} unfilled): render it first, e.g. "
            f"python -m tools.render_envoy --out /tmp/envoy.yaml, then check that file"
        )
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise EnvoyConfigError(f"{path}: not valid YAML: {error}") from None
    # typed_config Any fields unpack only into message types that have been imported.
    for type_url in set(_type_urls(document)):
        module = "envoy_data_plane." + type_url.rsplit("/", 1)[-1].rsplit(".", 1)[0]
        try:
            importlib.import_module(module)
        except ImportError:
            raise EnvoyConfigError(f"{path}: unknown type {type_url}") from None
    if not isinstance(document, dict):
        raise EnvoyConfigError(f"{path}: not a YAML mapping")
    try:
        return Bootstrap.from_dict(document)
    except Exception as error:  # the model raises many kinds; all mean "not a bootstrap"
        raise EnvoyConfigError(f"{path}: not a valid Envoy bootstrap: {error}") from None


def _action_entry(action: Any) -> ShapeEntry | None:
    """One RateLimitAction -> (descriptor key, fixed value or ANY); None if it adds nothing."""
    if action.source_cluster is not None:
        return ("source_cluster", ANY)
    if action.destination_cluster is not None:
        return ("destination_cluster", ANY)
    if action.request_headers is not None:
        return (action.request_headers.descriptor_key, ANY)
    if action.query_parameters is not None:
        return (action.query_parameters.descriptor_key, ANY)
    if action.remote_address is not None:
        return ("remote_address", ANY)
    if action.masked_remote_address is not None:
        return ("masked_remote_address", ANY)
    if action.generic_key is not None:
        key = action.generic_key.descriptor_key or "generic_key"
        return (key, action.generic_key.descriptor_value)
    if action.header_value_match is not None:
        match = action.header_value_match
        return (match.descriptor_key or "header_match", match.descriptor_value)
    if action.query_parameter_value_match is not None:
        match = action.query_parameter_value_match
        return (match.descriptor_key or "query_match", match.descriptor_value)
    if action.metadata is not None:
        return (action.metadata.descriptor_key, ANY)
    if action.dynamic_metadata is not None:
        return (action.dynamic_metadata.descriptor_key, ANY)
    return None


def _shapes(rate_limits: Any, domain: str, where: str) -> Iterator[DescriptorShape]:
    for rate_limit in rate_limits or ():
        entries = tuple(
            entry for entry in (_action_entry(action) for action in rate_limit.actions) if entry
        )
        if entries:
            yield DescriptorShape(domain, entries, where)


def descriptor_shapes(bootstrap: Any) -> list[DescriptorShape]:
    """Every descriptor shape of every route behind a rate-limit filter, with its domain."""
    shapes: list[DescriptorShape] = []
    resources = bootstrap.static_resources
    for listener in resources.listeners if resources else ():
        for chain in listener.filter_chains:
            for network_filter in chain.filters:
                if network_filter.typed_config is None:
                    continue
                manager = network_filter.typed_config.unpack()
                if type(manager).__name__ != "HttpConnectionManager":
                    continue
                domains = [
                    http_filter.typed_config.unpack().domain
                    for http_filter in manager.http_filters
                    if http_filter.name == RATELIMIT_FILTER and http_filter.typed_config
                ]
                route_config = manager.route_config
                if not domains or route_config is None:
                    continue
                for vhost in route_config.virtual_hosts:
                    for domain in domains:
                        where = f"listener {listener.name}, virtual host {vhost.name}"
                        shapes += _shapes(vhost.rate_limits, domain, where)
                        for route in vhost.routes:
                            if route.route is None:
                                continue
                            match = route.match
                            label = match.prefix or match.path or match.safe_regex or route.name
                            where = f"listener {listener.name}, route {label}"
                            shapes += _shapes(route.route.rate_limits, domain, where)
    return shapes
