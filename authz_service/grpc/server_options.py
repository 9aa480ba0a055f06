"""The options our gRPC servers are built with: keep-alive, message size, and a port's
`connections:` settings as the channel arguments grpc core enforces.

Without a cap and timeouts, clients holding connections open used up the process's
descriptors; every port has its own cap (see schema/server.py for the settings and
preflight/open_files.py for the start-up check that the caps fit the open-file limit).
"""

from __future__ import annotations

from collections.abc import Sequence

import grpc

from authz_service.errors import ListenError
from authz_service.schema import GrpcConnectionLimits, ServerSettings

# Keep-alive settings that let Envoy's long-lived HTTP/2 connections stay up.
SERVER_OPTIONS: Sequence[tuple[str, int]] = (
    ("grpc.keepalive_time_ms", 60_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
    ("grpc.max_receive_message_length", 4 * 1024 * 1024),
    # A port already in use is an error, not a silent share with another process.
    ("grpc.so_reuseport", 0),
)


def server_options(settings: ServerSettings) -> list[tuple[str, int]]:
    """SERVER_OPTIONS with the configured receive limit and connection limits."""
    options = dict(SERVER_OPTIONS)
    options["grpc.max_receive_message_length"] = settings.max_receive_message_bytes
    options.update(grpc_options(settings.connections))
    return list(options.items())


def grpc_options(limits: GrpcConnectionLimits) -> list[tuple[str, int]]:
    """The grpc core channel arguments that enforce `limits` on a server."""
    options = [
        ("grpc.max_allowed_incoming_connections", limits.max_connections),
        ("grpc.server_handshake_timeout_ms", _ms(limits.header_timeout_s)),
        ("grpc.max_connection_idle_ms", _ms(limits.idle_timeout_s)),
    ]
    if limits.max_age_s is not None:
        options.append(("grpc.max_connection_age_ms", _ms(limits.max_age_s)))
        options.append(("grpc.max_connection_age_grace_ms", _ms(limits.max_age_grace_s)))
    return options


def _ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))


def bind_port(
    server: grpc.aio.Server,
    setting: str,
    address: str,
    credentials: grpc.ServerCredentials | None,
) -> int:
    """Add the port; a failure (gRPC raises RuntimeError, or answers 0) is a ListenError."""
    try:
        if credentials is not None:
            port = server.add_secure_port(address, credentials)
        else:
            port = server.add_insecure_port(address)
    except RuntimeError:
        port = 0
    if port == 0:
        raise ListenError(f"{setting} {address}: cannot listen")
    return int(port)
