"""The request bodies the load generators send: Envoy protobufs, serialised and gRPC-framed."""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence

from envoy.service.auth.v3 import attribute_context_pb2, external_auth_pb2
from envoy.service.ratelimit.v3 import rls_pb2

CHECK_PATH = "/envoy.service.auth.v3.Authorization/Check"
RATE_LIMIT_PATH = "/envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit"

REQUEST_METHOD = "GET"
REQUEST_HOST = "api.example.com"
REQUEST_PATH = "/api/orders/12345"
RATE_LIMIT_DOMAIN = "bench"


def grpc_frame(message: bytes) -> bytes:
    """The 5-byte gRPC length prefix (not compressed) + the message."""
    return struct.pack(">BI", 0, len(message)) + message


def frames_file(messages: Iterable[bytes]) -> bytes:
    return b"".join(grpc_frame(message) for message in messages)


def request_headers(token: str, index: int, path: str = REQUEST_PATH) -> dict[str, str]:
    """Ten headers, as Envoy puts them in a CheckRequest (pseudo-headers included)."""
    return {
        ":authority": REQUEST_HOST,
        ":method": REQUEST_METHOD,
        ":path": path,
        ":scheme": "https",
        "authorization": f"Bearer {token}",
        "user-agent": "bench-client/1.0",
        "accept": "application/json",
        "accept-encoding": "gzip, br",
        "x-forwarded-proto": "https",
        "x-request-id": f"00000000-0000-4000-8000-{index:012d}",
    }


def check_request(token: str, index: int = 0, path: str = REQUEST_PATH) -> bytes:
    source = attribute_context_pb2.AttributeContext.Peer()
    source.address.socket_address.address = f"10.0.{index // 250}.{index % 250 + 1}"
    source.address.socket_address.port_value = 40000 + index % 20000
    destination = attribute_context_pb2.AttributeContext.Peer()
    destination.address.socket_address.address = "10.1.0.1"
    destination.address.socket_address.port_value = 443
    http = attribute_context_pb2.AttributeContext.HttpRequest(
        id=str(index),
        method=REQUEST_METHOD,
        headers=request_headers(token, index, path),
        path=path,
        host=REQUEST_HOST,
        scheme="https",
        protocol="HTTP/1.1",
    )
    attributes = attribute_context_pb2.AttributeContext(
        source=source,
        destination=destination,
        request=attribute_context_pb2.AttributeContext.Request(http=http),
        context_extensions={"policy": "public"},
    )
    return external_auth_pb2.CheckRequest(attributes=attributes).SerializeToString()


def rate_limit_request(user: str, index: int = 0) -> bytes:
    """Three descriptors, as the Envoy route in benchmarks/envoy sends them."""
    descriptors: Sequence[Sequence[tuple[str, str]]] = (
        (("remote_address", f"10.0.{index // 250}.{index % 250 + 1}"),),
        (("user", user),),
        (("tier", "gold"), ("endpoint", "orders-read")),
    )
    request = rls_pb2.RateLimitRequest(domain=RATE_LIMIT_DOMAIN, hits_addend=1)
    for entries in descriptors:
        descriptor = request.descriptors.add()
        for key, value in entries:
            descriptor.entries.add(key=key, value=value)
    return request.SerializeToString()
