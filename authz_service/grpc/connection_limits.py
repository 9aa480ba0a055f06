"""A gRPC port's `connections:` settings as the channel arguments grpc core enforces.

Without a cap and timeouts, clients holding connections open used up the process's
descriptors; every port has its own cap (see schema/server.py for the settings and
preflight/open_files.py for the start-up check that the caps fit the open-file limit).
"""

from __future__ import annotations

from authz_service.schema import GrpcConnectionLimits


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
