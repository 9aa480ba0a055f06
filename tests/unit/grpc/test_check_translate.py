from __future__ import annotations

import pytest
from envoy.config.core.v3 import address_pb2, base_pb2
from envoy.service.auth.v3 import attribute_context_pb2, external_auth_pb2
from google.rpc import code_pb2

from authz_service.decisions import Outcome
from authz_service.grpc.check_translate import (
    allow_response,
    deny_response,
    refused_request_attributes,
    request_attributes,
)
from authz_service.schema import RequestLimits
from authz_service.services.request_limits import RequestTooLarge
from authz_service.services.response_policy import AllowResponse, DenyResponse

AttributeContext = attribute_context_pb2.AttributeContext
OVERWRITE = base_pb2.HeaderValueOption.OVERWRITE_IF_EXISTS_OR_ADD


def check_request(http: AttributeContext.HttpRequest) -> external_auth_pb2.CheckRequest:
    return external_auth_pb2.CheckRequest(
        attributes=AttributeContext(
            source=AttributeContext.Peer(
                address=address_pb2.Address(
                    socket_address=address_pb2.SocketAddress(address="10.0.0.7", port_value=51234)
                ),
                principal="spiffe://prod/ns/billing/sa/batch",
            ),
            request=AttributeContext.Request(http=http),
            context_extensions={"policy": "internal"},
        )
    )


def test_check_request_becomes_request_attributes() -> None:
    http = AttributeContext.HttpRequest(
        id="req-1",
        method="POST",
        host="api.example.com",
        path="/api/items?x=1",
        headers={"authorization": "Bearer t", "x-request-id": "r"},
    )
    attributes = request_attributes(check_request(http))
    assert attributes.method == "POST"
    assert attributes.host == "api.example.com"
    assert attributes.path == "/api/items?x=1"
    assert attributes.headers == {"authorization": "Bearer t", "x-request-id": "r"}
    assert attributes.source_address == "10.0.0.7"
    assert attributes.peer_principal == "spiffe://prod/ns/billing/sa/batch"
    assert attributes.context == {"policy": "internal"}
    assert attributes.request_id == "r"  # x-request-id, not Envoy's stream number in `id`


def test_request_id_falls_back_to_envoys_id_without_an_x_request_id() -> None:
    http = AttributeContext.HttpRequest(id="17", method="GET", host="api", path="/")
    assert request_attributes(check_request(http)).request_id == "17"


def test_header_map_is_read_when_envoy_sends_raw_headers() -> None:
    http = AttributeContext.HttpRequest(
        method="GET",
        path="/",
        header_map=base_pb2.HeaderMap(
            headers=[
                base_pb2.HeaderValue(key="X-Api-Key", raw_value=b"k1"),
                base_pb2.HeaderValue(key="accept", value="text/html"),
                base_pb2.HeaderValue(key="accept", raw_value=b"application/json"),
            ]
        ),
    )
    headers = request_attributes(check_request(http)).headers
    assert headers == {"x-api-key": "k1", "accept": "text/html,application/json"}


def test_request_without_source_address_has_empty_attributes() -> None:
    attributes = request_attributes(external_auth_pb2.CheckRequest())
    assert (attributes.source_address, attributes.peer_principal, attributes.context) == (
        "",
        "",
        {},
    )


def test_allow_becomes_ok_response_with_overwriting_headers_and_metadata() -> None:
    response = allow_response(
        AllowResponse(
            headers_to_set={"x-user-id": "alice", "x-user-roles": "a\r\nx-admin: 1"},
            headers_to_remove=("x-user-tier",),
            dynamic_metadata={"principal": "alice", "tier": ""},
        )
    )
    assert response.status.code == code_pb2.OK
    ok = response.ok_response
    assert [(h.header.key, h.header.value, h.append_action) for h in ok.headers] == [
        ("x-user-id", "alice", OVERWRITE),
        ("x-user-roles", "ax-admin: 1", OVERWRITE),
    ]
    assert list(ok.headers_to_remove) == ["x-user-tier"]
    assert dict(response.dynamic_metadata) == {"principal": "alice"}


def test_deny_becomes_denied_response_with_status_headers_and_body() -> None:
    response = deny_response(
        Outcome.UNAUTHENTICATED,
        DenyResponse(
            status=401,
            headers={"www-authenticate": 'Bearer realm="r"', "x-authz-reason": "token_expired"},
            body='{"reason":"token_expired"}',
            dynamic_metadata={"reason": "token_expired"},
        ),
    )
    assert response.status.code == code_pb2.UNAUTHENTICATED
    denied = response.denied_response
    assert denied.status.code == 401
    assert {h.header.key: h.header.value for h in denied.headers} == {
        "www-authenticate": 'Bearer realm="r"',
        "x-authz-reason": "token_expired",
    }
    assert all(h.append_action == OVERWRITE for h in denied.headers)
    assert denied.body == '{"reason":"token_expired"}'
    assert dict(response.dynamic_metadata) == {"reason": "token_expired"}


def test_deny_outcomes_map_to_grpc_status_codes() -> None:
    expected = {
        Outcome.UNAUTHENTICATED: code_pb2.UNAUTHENTICATED,
        Outcome.FORBIDDEN: code_pb2.PERMISSION_DENIED,
        Outcome.RATE_LIMITED: code_pb2.RESOURCE_EXHAUSTED,
        Outcome.UNAVAILABLE: code_pb2.UNAVAILABLE,
    }
    for outcome, code in expected.items():
        response = deny_response(outcome, DenyResponse(status=403, headers={}, body=""))
        assert response.status.code == code, outcome


def test_a_raw_header_map_past_the_count_limit_is_too_large() -> None:
    raw = [base_pb2.HeaderValue(key=f"x-h{i}", raw_value=b"1") for i in range(11)]
    http = AttributeContext.HttpRequest(path="/", header_map=base_pb2.HeaderMap(headers=raw))
    with pytest.raises(RequestTooLarge, match="11 headers; at most 10"):
        request_attributes(check_request(http), RequestLimits(max_headers=10))


def test_a_long_path_counts_towards_the_header_bytes_limit() -> None:
    http = AttributeContext.HttpRequest(path="/" + "a" * 2000, headers={"accept": "x"})
    with pytest.raises(RequestTooLarge, match="at most 1024"):
        request_attributes(check_request(http), RequestLimits(max_header_bytes=1024))
    assert request_attributes(check_request(http)).path.startswith("/aaa")


def test_a_refused_request_is_described_by_a_bounded_head_without_headers() -> None:
    http = AttributeContext.HttpRequest(
        method="GET", path="/" + "a" * 10_000, headers={"authorization": "Bearer secret"}
    )
    shown = refused_request_attributes(check_request(http))
    assert len(shown.path) == 256
    assert shown.headers == {}
    assert shown.source_address == "10.0.0.7"
