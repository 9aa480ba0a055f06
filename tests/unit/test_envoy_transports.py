"""The HTTP transport of envoy/envoy.yaml (tools/envoy_transports.py): what it changes in the
render, what it keeps, and what it refuses. Envoy itself validates every render in
tests/deploy/test_envoy_configs.py; the e2e tests run it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from authz_service.config.loader import load_config_file
from tools.envoy_transports import (
    CLIENT_ADDRESS_HEADER,
    EXT_AUTHZ,
    TransportError,
    apply_transport,
    listener_policy,
    metadata_headers,
    upstream_header_names,
)
from tools.render_envoy import LOCAL_DEFAULTS, LOCAL_SERVICE_CONFIG, render, render_mode

RATELIMIT = "envoy.filters.http.ratelimit"


def managers(config: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for listener in config["static_resources"]["listeners"]:
        typed = listener["filter_chains"][0]["filters"][0]["typed_config"]
        if "http_filters" in typed:
            yield typed


def filters(manager: dict[str, Any], name: str) -> list[dict[str, Any]]:
    return [f["typed_config"] for f in manager["http_filters"] if f["name"] == name]


@pytest.fixture(scope="module")
def http_render() -> dict[str, Any]:
    config: dict[str, Any] = yaml.safe_load(render_mode({}, transport="http"))
    return config


def test_the_grpc_transport_is_the_template_unchanged() -> None:
    rendered = render({})
    assert apply_transport(rendered, "grpc", LOCAL_DEFAULTS, LOCAL_SERVICE_CONFIG) == rendered


def test_each_listener_asks_its_own_mount_over_http(http_render: dict[str, Any]) -> None:
    prefixes = {}
    for manager in managers(http_render):
        for ext_authz in filters(manager, EXT_AUTHZ):
            assert "grpc_service" not in ext_authz
            assert ext_authz["failure_mode_allow"] is False
            assert ext_authz["status_on_error"] == {"code": "ServiceUnavailable"}
            prefixes[manager["stat_prefix"]] = ext_authz["http_service"]["path_prefix"]
    assert prefixes == {"public": "/envoy/public", "internal": "/envoy/internal"}
    assert "context_extensions" not in yaml.safe_dump(http_render)


def test_every_identity_header_is_copied_upstream_and_principal_and_tier_are_metadata(
    http_render: dict[str, Any],
) -> None:
    service = load_config_file(LOCAL_SERVICE_CONFIG).config
    names = set(upstream_header_names(service))
    assert {"x-user-id", "x-user-roles", "x-user-tier", "x-auth-method", "x-user-email"} <= names
    assert "cookie" in names  # the Cookie header with the token cookie cut out
    for manager in managers(http_render):
        for ext_authz in filters(manager, EXT_AUTHZ):
            answer = ext_authz["http_service"]["authorization_response"]
            assert {p["exact"] for p in answer["allowed_upstream_headers"]["patterns"]} == names
            metadata = {p["exact"] for p in answer["dynamic_metadata_from_headers"]["patterns"]}
            assert metadata == {"x-user-id", "x-user-tier"}


def test_rate_limit_actions_and_access_logs_read_the_metadata_under_its_header_name(
    http_render: dict[str, Any],
) -> None:
    text = yaml.safe_dump(http_render)
    assert "ext_authz:principal" not in text and "key: principal" not in text
    assert "%DYNAMIC_METADATA(envoy.filters.http.ext_authz:x-user-id)%" in text
    assert "key: x-user-tier" in text
    assert metadata_headers(load_config_file(LOCAL_SERVICE_CONFIG).config) == {
        "principal": "x-user-id",
        "tier": "x-user-tier",
    }


def test_the_rate_limit_filter_stays_grpc_and_the_check_cluster_is_added(
    http_render: dict[str, Any],
) -> None:
    (public, *_) = managers(http_render)
    (ratelimit,) = filters(public, RATELIMIT)
    assert ratelimit["rate_limit_service"]["grpc_service"]["envoy_grpc"]["cluster_name"] == (
        "authz_service"
    )
    clusters = {c["name"]: c for c in http_render["static_resources"]["clusters"]}
    check = clusters["authz_http"]["load_assignment"]["endpoints"][0]["lb_endpoints"][0]
    assert check["endpoint"]["address"]["socket_address"]["port_value"] == 9003
    assert check["endpoint"]["health_check_config"] == {"port_value": 9102}
    assert clusters["authz_http"]["health_checks"][0]["http_health_check"] == {"path": "/readyz"}


def test_the_public_listener_forwards_the_peer_certificate_as_a_sanitised_xfcc(
    http_render: dict[str, Any],
) -> None:
    (public, *_) = managers(http_render)
    assert public["forward_client_cert_details"] == "SANITIZE_SET"
    (ext_authz,) = filters(public, EXT_AUTHZ)
    allowed = {p["exact"] for p in ext_authz["allowed_headers"]["patterns"]}
    assert {"x-forwarded-client-cert", "dpop", "cookie", "x-api-key"} <= allowed


def test_a_route_naming_another_policy_than_its_listener_is_refused() -> None:
    config = yaml.safe_load(render({}))
    (public, *_) = managers(config)
    route = public["route_config"]["virtual_hosts"][0]["routes"][-1]
    route["typed_per_filter_config"] = {
        EXT_AUTHZ: {"check_settings": {"context_extensions": {"policy": "admin"}}}
    }

    with pytest.raises(TransportError, match=r"names policy 'admin'.*per listener"):
        listener_policy(public)


def test_an_unknown_transport_is_refused() -> None:
    with pytest.raises(TransportError, match="one of grpc, http"):
        apply_transport(render({}), "grpc-web", LOCAL_DEFAULTS, LOCAL_SERVICE_CONFIG)


def test_the_client_address_is_added_by_envoy_and_no_client_copy_is_let_through(
    http_render: dict[str, Any],
) -> None:
    for manager in managers(http_render):
        for ext_authz in filters(manager, EXT_AUTHZ):
            added = ext_authz["http_service"]["authorization_request"]["headers_to_add"]
            assert {
                "key": CLIENT_ADDRESS_HEADER,
                "value": "%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%",
            } in added
            allowed = {p["exact"] for p in ext_authz["allowed_headers"]["patterns"]}
            assert CLIENT_ADDRESS_HEADER not in allowed


def test_what_the_template_adds_to_its_ext_authz_filters_carries_over_to_http() -> None:
    config = yaml.safe_load(render({}))
    for manager in managers(config):
        for ext_authz in filters(manager, EXT_AUTHZ):
            ext_authz["with_request_body"] = {"max_request_bytes": 8192}
            ext_authz["allowed_headers"] = {"patterns": [{"exact": "x-tenant"}]}
            ext_authz["grpc_service"]["timeout"] = "0.5s"

    rendered = yaml.safe_load(
        apply_transport(yaml.safe_dump(config), "http", LOCAL_DEFAULTS, LOCAL_SERVICE_CONFIG)
    )

    for manager in managers(rendered):
        for ext_authz in filters(manager, EXT_AUTHZ):
            assert ext_authz["with_request_body"] == {"max_request_bytes": 8192}
            allowed = ext_authz["allowed_headers"]["patterns"]
            assert {"exact": "x-tenant"} in allowed
            assert {"exact": "authorization", "ignore_case": True} in allowed
            assert ext_authz["http_service"]["server_uri"]["timeout"] == "0.5s"
            assert "grpc_service" not in ext_authz
