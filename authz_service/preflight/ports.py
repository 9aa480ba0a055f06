"""Before anything starts: can every configured port be bound? One clear line if not.

gRPC reports a taken port as a RuntimeError ("Failed to bind ... set GRPC_VERBOSITY") after
logging a C-core line, and aiohttp as an OSError deep in the event loop; by then other ports
may already be serving. Probing every address first fails the start before any side effect,
naming the setting, the address and the reason.
"""

from __future__ import annotations

import errno
import os
import socket
from collections.abc import Iterable

from authz_service.errors import ListenError
from authz_service.schema import split_listen

__all__ = ["ListenError", "check_all", "check_listen"]


_REASONS = {
    errno.EADDRINUSE: "address already in use",
    errno.EADDRNOTAVAIL: "no such local address",
    errno.EACCES: "permission denied (a port below 1024 needs privileges)",
}


def check_listen(setting: str, address: str) -> None:
    """Raise ListenError unless `address` (host:port) can be bound now."""
    if address.startswith("unix:"):
        return  # a socket file: gRPC reports its own problems with it
    try:
        host, port = split_listen(address)
    except ValueError as error:
        raise ListenError(f"{setting} {address}: {error}") from None
    try:
        candidates = socket.getaddrinfo(
            host.strip("[]") or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except socket.gaierror as error:
        raise ListenError(f"{setting} {address}: cannot resolve the host: {error}") from None
    for family, kind, proto, _, sockaddr in candidates:
        with socket.socket(family, kind, proto) as probe:
            # As the servers do: a port in TIME_WAIT from a previous run is free to reuse.
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(sockaddr)
            except OSError as error:
                reason = _REASONS.get(error.errno or 0) or os.strerror(error.errno or 0)
                raise ListenError(f"{setting} {address}: cannot listen: {reason}") from None


def check_all(listens: Iterable[tuple[str, str | None]]) -> None:
    """Check each (setting, address) whose address is set."""
    for setting, address in listens:
        if address is not None:
            check_listen(setting, address)
