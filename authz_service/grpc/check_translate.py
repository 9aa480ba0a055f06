"""Envoy ext_authz protobufs <-> core types. Pure functions, no I/O."""

from __future__ import annotations

from collections.abc import Mapping

from envoy.config.core.v3 import base_pb2
from envoy.service.auth.v3 import attribute_context_pb2, external_auth_pb2
from envoy.type.v3 import http_status_pb2
from google.protobuf import struct_pb2
from google.rpc import code_pb2, status_pb2

from authz_service.authn.cert_binding import thumbprint_of_envoy_certificate
from authz_service.decisions import Outcome, RequestAttributes
from authz_service.schema import RequestLimits
from authz_service.services.request_limits import check_head_size, check_header_count
from authz_service.services.response_policy import AllowResponse, DenyResponse
from authz_service.services.sanitise import header_value, refused_head

_OVERWRITE = base_pb2.HeaderValueOption.OVERWRITE_IF_EXISTS_OR_ADD
_RPC_CODE = {
    Outcome.UNAUTHENTICATED: code_pb2.UNAUTHENTICATED,
    Outcome.FORBIDDEN: code_pb2.PERMISSION_DENIED,
    Outcome.RATE_LIMITED: code_pb2.RESOURCE_EXHAUSTED,
    Outcome.UNAVAILABLE: code_pb2.UNAVAILABLE,
}


_DEFAULT_LIMITS = RequestLimits()


def _headers_of(
    http: attribute_context_pb2.AttributeContext.HttpRequest, limits: RequestLimits
) -> dict[str, str]:
    """The header map, built only once the count is known to be within the limits.

    Raises RequestTooLarge first: the count is free on the parsed message, so an oversized
    request costs nothing beyond its parse (which max_receive_message_bytes bounds).
    """
    if http.headers:
        check_header_count(len(http.headers), limits)
        headers = dict(http.headers)
    else:
        # Envoy sends header_map instead when `encode_raw_headers` is on.
        entries = http.header_map.headers
        check_header_count(len(entries), limits)
        headers = {}
        for entry in entries:
            value = entry.raw_value.decode("utf-8", "replace") if entry.raw_value else entry.value
            key = entry.key.lower()
            headers[key] = f"{headers[key]},{value}" if key in headers else value
    check_head_size((*headers, *headers.values(), http.path, http.host), limits)
    return headers


def request_attributes(
    request: external_auth_pb2.CheckRequest, limits: RequestLimits = _DEFAULT_LIMITS
) -> RequestAttributes:
    """Raises RequestTooLarge when the head is past `limits` (a 431 deny)."""
    attributes = request.attributes
    http = attributes.request.http
    source = attributes.source
    address = source.address.socket_address.address if source.HasField("address") else ""
    headers = _headers_of(http, limits)
    return RequestAttributes(
        method=http.method,
        host=http.host,
        path=http.path,
        headers=headers,
        source_address=address,
        peer_principal=source.principal,
        context=dict(attributes.context_extensions),
        # Envoy's `id` is its stream number; the id clients and access logs quote is the
        # x-request-id header (generate_request_id), so audit lines carry that.
        request_id=headers.get("x-request-id") or http.id,
        client_cert_thumbprint=thumbprint_of_envoy_certificate(source.certificate),
    )


def refused_request_attributes(request: external_auth_pb2.CheckRequest) -> RequestAttributes:
    """The head of a request refused unread, cut short: its headers are not looked at."""
    attributes = request.attributes
    http = attributes.request.http
    source = attributes.source
    address = source.address.socket_address.address if source.HasField("address") else ""
    return refused_head(http.method, http.host, http.path, address, source.principal, http.id)


def _header_options(headers: Mapping[str, str]) -> list[base_pb2.HeaderValueOption]:
    return [
        base_pb2.HeaderValueOption(
            header=base_pb2.HeaderValue(key=key, value=header_value(value)),
            append_action=_OVERWRITE,
        )
        for key, value in headers.items()
    ]


def _struct(values: Mapping[str, str]) -> struct_pb2.Struct:
    metadata = struct_pb2.Struct()
    metadata.update({key: value for key, value in values.items() if value})
    return metadata


def allow_response(response: AllowResponse) -> external_auth_pb2.CheckResponse:
    return external_auth_pb2.CheckResponse(
        status=status_pb2.Status(code=code_pb2.OK),
        ok_response=external_auth_pb2.OkHttpResponse(
            headers=_header_options(response.headers_to_set),
            headers_to_remove=list(response.headers_to_remove),
        ),
        dynamic_metadata=_struct(response.dynamic_metadata),
    )


def deny_response(outcome: Outcome, response: DenyResponse) -> external_auth_pb2.CheckResponse:
    return external_auth_pb2.CheckResponse(
        status=status_pb2.Status(code=_RPC_CODE.get(outcome, code_pb2.PERMISSION_DENIED)),
        denied_response=external_auth_pb2.DeniedHttpResponse(
            status=http_status_pb2.HttpStatus(code=response.status),
            headers=_header_options(response.headers),
            body=response.body,
        ),
        dynamic_metadata=_struct(response.dynamic_metadata),
    )
