"""How many connections each port keeps open, and for how long a silent or slow one may stay.

Without these, 3,000 clients trickling request headers held the HTTP check port's sockets
forever and used up the process's descriptors, so new gRPC connections and /healthz failed.
Every port has its own cap (a flood on one cannot take another's share) and the sum of the
caps must fit the open-file limit (checked at start, see `descriptors.py`). Start-only.
"""

from __future__ import annotations

from pydantic import Field

from authz_service.config.strict import Strict


class ConnectionLimits(Strict):
    """`connections:` of an HTTP port (http_check, telemetry.metrics)."""

    # Past this many open connections, a new one is closed as soon as it is accepted.
    max_connections: int = Field(default=512, ge=1, le=1_000_000)
    # A request's head (request line and headers) must arrive within this long of the
    # connection opening or of its first byte; a client trickling bytes is cut off then.
    header_timeout_s: float = Field(default=10.0, gt=0, le=300)
    # A kept-alive connection with no request for this long is closed. Keep it above the
    # gateway's own upstream idle timeout (nginx keepalive_timeout, Envoy idle_timeout), so
    # that the gateway, not we, closes idle connections and never races a request.
    idle_timeout_s: float = Field(default=300.0, gt=0, le=86_400)


class GrpcConnectionLimits(ConnectionLimits):
    """`connections:` of a gRPC port (server, admin).

    header_timeout_s bounds the TLS and HTTP/2 handshake; idle_timeout_s closes (GOAWAY) a
    connection with no RPC in flight; Envoy reconnects on demand either way.
    """

    max_connections: int = Field(default=256, ge=1, le=1_000_000)
    # Connections are closed (GOAWAY) after this long, so that clients spread again over
    # replicas; calls in flight get max_age_grace_s to finish. None: never.
    max_age_s: float | None = Field(default=3600.0, gt=0)
    max_age_grace_s: float = Field(default=30.0, ge=0, le=3600)


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
