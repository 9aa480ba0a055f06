"""Gateway subrequests -> RequestAttributes, and answers -> HTTP replies, per integration."""

from __future__ import annotations

import pytest

from authz_service.http.check_translate import (
    ENVOY_HEADERS_TO_REMOVE,
    ReceivedRequest,
    UnreadableRequest,
    allow_reply,
    client_address,
    deny_reply,
    endpoint_for,
    envoy_request,
    join_headers,
    nginx_request,
    traefik_request,
)
from authz_service.schema import Endpoint, HttpCheckSettings
from authz_service.services.response_policy import AllowResponse, DenyResponse

SETTINGS = HttpCheckSettings(trusted_proxies=["127.0.0.1/32", "10.0.0.0/8"])  # type: ignore[list-item]
PROXY = "127.0.0.1"
NGINX = Endpoint(path="/nginx", integration="nginx", context={"policy": "public"})
TRAEFIK = Endpoint(path="/traefik", integration="traefik")
ENVOY = Endpoint(path="/envoy", integration="envoy", context={"policy": "internal"})


def received(
    headers: dict[str, str], *, method: str = "GET", target: str = "/nginx", peer: str = PROXY
) -> ReceivedRequest:
    return ReceivedRequest(method=method, target=target, headers=headers, peer=peer)


def nginx_headers(**extra: str) -> dict[str, str]:
    return {
        "host": "authz:9003",
        "x-original-uri": "/api/orders?page=2",
        "x-original-method": "POST",
        "x-original-host": "shop.example",
        "x-real-ip": "203.0.113.7",
        "authorization": "Bearer abc",
        **extra,
    }


def test_nginx_request_is_rebuilt_from_the_original_headers() -> None:
    attributes = nginx_request(received(nginx_headers()), NGINX, SETTINGS)
    assert (attributes.method, attributes.host, attributes.path) == (
        "POST",
        "shop.example",
        "/api/orders?page=2",
    )
    assert attributes.source_address == "203.0.113.7"
    assert attributes.context == {"policy": "public"}
    assert attributes.headers["authorization"] == "Bearer abc"


def test_nginx_without_original_host_uses_the_host_header() -> None:
    headers = nginx_headers()
    del headers["x-original-host"]
    assert nginx_request(received(headers), NGINX, SETTINGS).host == "authz:9003"


@pytest.mark.parametrize("missing", ["x-original-uri", "x-original-method"])
def test_nginx_without_original_uri_or_method_is_unreadable(missing: str) -> None:
    headers = nginx_headers()
    del headers[missing]
    with pytest.raises(UnreadableRequest, match=missing):
        nginx_request(received(headers), NGINX, SETTINGS)


@pytest.mark.parametrize("uri", ["api/orders", "*", "/a b", ""])
def test_nginx_uri_that_is_not_a_path_is_unreadable(uri: str) -> None:
    with pytest.raises(UnreadableRequest):
        nginx_request(received(nginx_headers(**{"x-original-uri": uri})), NGINX, SETTINGS)


def test_absolute_form_uri_keeps_only_path_and_query() -> None:
    headers = nginx_headers(**{"x-original-uri": "http://evil.example/admin/x?y=1"})
    assert nginx_request(received(headers), NGINX, SETTINGS).path == "/admin/x?y=1"


def test_method_is_upper_cased_and_garbage_refused() -> None:
    headers = nginx_headers(**{"x-original-method": "delete"})
    assert nginx_request(received(headers), NGINX, SETTINGS).method == "DELETE"
    with pytest.raises(UnreadableRequest):
        nginx_request(received(nginx_headers(**{"x-original-method": "GET /x"})), NGINX, SETTINGS)


def test_client_address_header_from_an_untrusted_peer_is_ignored() -> None:
    attributes = nginx_request(received(nginx_headers(), peer="198.51.100.9"), NGINX, SETTINGS)
    assert attributes.source_address == "198.51.100.9"


def test_trusted_proxy_without_client_address_header_gives_no_address() -> None:
    headers = nginx_headers()
    del headers["x-real-ip"]
    assert nginx_request(received(headers), NGINX, SETTINGS).source_address == ""


def traefik_headers(**extra: str) -> dict[str, str]:
    return {
        "host": "authz:9003",
        "x-forwarded-method": "DELETE",
        "x-forwarded-proto": "https",
        "x-forwarded-host": "api.example",
        "x-forwarded-uri": "/api/orders/7",
        "x-forwarded-for": "203.0.113.7",
        "x-api-key": "key",
        **extra,
    }


def test_traefik_request_is_rebuilt_from_forwarded_headers() -> None:
    attributes = traefik_request(received(traefik_headers(), target="/traefik"), TRAEFIK, SETTINGS)
    assert (attributes.method, attributes.host, attributes.path) == (
        "DELETE",
        "api.example",
        "/api/orders/7",
    )
    assert attributes.source_address == "203.0.113.7"
    assert attributes.context == {}


@pytest.mark.parametrize("missing", ["x-forwarded-method", "x-forwarded-uri"])
def test_traefik_without_forwarded_method_or_uri_is_unreadable(missing: str) -> None:
    headers = traefik_headers()
    del headers[missing]
    with pytest.raises(UnreadableRequest, match=missing):
        traefik_request(received(headers, target="/traefik"), TRAEFIK, SETTINGS)


def test_envoy_request_strips_the_mount_and_keeps_method_host_and_query() -> None:
    request = received(
        {"host": "shop.example", "x-forwarded-for": "203.0.113.7", "x-request-id": "r-1"},
        method="PUT",
        target="/envoy/api/orders/7?x=1",
    )
    attributes = envoy_request(request, ENVOY, SETTINGS)
    assert (attributes.method, attributes.host, attributes.path) == (
        "PUT",
        "shop.example",
        "/api/orders/7?x=1",
    )
    assert attributes.source_address == "203.0.113.7"
    assert attributes.request_id == "r-1"
    assert attributes.context == {"policy": "internal"}


@pytest.mark.parametrize(("target", "path"), [("/envoy", "/"), ("/envoy?a=1", "/?a=1")])
def test_envoy_request_for_the_root_path(target: str, path: str) -> None:
    request = received({"host": "h"}, target=target)
    assert envoy_request(request, ENVOY, SETTINGS).path == path


TRUSTED = SETTINGS.trusted_proxies


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("203.0.113.7", "203.0.113.7"),
        # A client's own (spoofed) entries sit left of what the proxies appended.
        ("6.6.6.6, 203.0.113.7", "203.0.113.7"),
        ("6.6.6.6, 203.0.113.7, 10.1.2.3", "203.0.113.7"),
        # Every hop trusted: the leftmost is the origin.
        ("10.0.0.5, 10.1.2.3", "10.0.0.5"),
        ("203.0.113.7:5123", "203.0.113.7"),
        ("[2001:db8::1]:443", "2001:db8::1"),
        ("not-an-ip, 10.1.2.3", ""),
        ("", ""),
    ],
)
def test_forwarded_for_is_walked_from_the_right_past_trusted_proxies(
    header: str, expected: str
) -> None:
    assert client_address(header, PROXY, TRUSTED, forwarded_for=True) == expected


def test_single_address_header_is_not_split() -> None:
    assert client_address("203.0.113.7", "10.9.9.9", TRUSTED, forwarded_for=False) == "203.0.113.7"
    assert client_address("a, b", "10.9.9.9", TRUSTED, forwarded_for=False) == ""


def test_endpoint_is_chosen_by_mount_path_only() -> None:
    endpoints = [NGINX, TRAEFIK, ENVOY]
    assert endpoint_for("/nginx", endpoints) is NGINX
    assert endpoint_for("/nginx?x=1", endpoints) is NGINX
    assert endpoint_for("/envoy/api/x", endpoints) is ENVOY
    assert endpoint_for("/nginxx", endpoints) is None
    assert endpoint_for("/", endpoints) is None


def test_repeated_headers_are_joined_and_names_lower_cased() -> None:
    joined = join_headers([("Cookie", "a=1"), ("cookie", "b=2"), ("X-A", "1"), ("x-a", "2")])
    assert joined == {"cookie": "a=1; b=2", "x-a": "1, 2"}


ALLOW = AllowResponse(
    headers_to_set={"x-user-id": "alice\r\nx-evil: 1", "x-user-roles": "admin"},
    headers_to_remove=("authorization", "x-user-tier"),
    dynamic_metadata={"principal": "alice"},
)


def test_allow_is_200_with_identity_headers_for_every_integration() -> None:
    for integration in ("nginx", "traefik", "envoy"):
        reply = allow_reply(integration, ALLOW)  # type: ignore[arg-type]
        assert reply.status == 200
        assert reply.headers["x-user-id"] == "alicex-evil: 1"
        assert reply.headers["x-user-roles"] == "admin"


def test_allow_for_envoy_lists_headers_to_remove() -> None:
    assert allow_reply("envoy", ALLOW).headers[ENVOY_HEADERS_TO_REMOVE] == (
        "authorization,x-user-tier"
    )
    assert ENVOY_HEADERS_TO_REMOVE not in allow_reply("nginx", ALLOW).headers


DENY = DenyResponse(
    status=401,
    headers={"content-type": "application/json", "www-authenticate": 'Bearer realm="r"'},
    body='{"error":"unauthenticated","reason":"missing_credentials","message":"m"}',
)


def test_deny_keeps_status_headers_and_body() -> None:
    reply = deny_reply("traefik", DENY, "x-authz-deny-body")
    assert (reply.status, reply.body) == (401, DENY.body)
    assert reply.headers["www-authenticate"] == 'Bearer realm="r"'
    assert "x-authz-deny-body" not in reply.headers


def test_deny_for_nginx_also_carries_the_body_in_a_header() -> None:
    reply = deny_reply("nginx", DENY, "x-authz-deny-body")
    assert reply.headers["x-authz-deny-body"] == DENY.body
