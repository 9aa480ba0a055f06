"""The serving ports' settings: `server:` (the gRPC port and its TLS), `admin:`, the
`connections:` of every port, and `request_limits:` (how large a check request may be)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from authz_service.schema.base import Sha256Hash, Strict


class PortConnectionLimits(Strict):
    """What every port's `connections:` holds (see ConnectionLimits)."""

    # Past this many open connections, a new one is closed as soon as it is accepted
    # (`http_check.server: granian`: it waits, unaccepted, until one closes).
    max_connections: int = Field(default=512, ge=1, le=1_000_000)
    # A request's head (request line and headers) must arrive within this long of the
    # connection opening or of its first byte; a client trickling bytes is cut off then.
    # (granian: within this long of the connection opening or of the previous answer, so an
    # idle kept-alive connection is closed after the shorter of this and idle_timeout_s:
    # keep the gateway's upstream idle timeout below that, so that it closes first.)
    header_timeout_s: float = Field(default=10.0, gt=0, le=300)
    # A kept-alive connection with no request for this long is closed. Keep it above the
    # gateway's own upstream idle timeout (nginx keepalive_timeout, Envoy idle_timeout), so
    # that the gateway, not we, closes idle connections and never races a request.
    idle_timeout_s: float = Field(default=300.0, gt=0, le=86_400)


class ConnectionLimits(PortConnectionLimits):
    """`connections:` of an HTTP port (http_check, telemetry.metrics).

    How many connections each port keeps open, and for how long a silent or slow one may
    stay. Without these, 3,000 clients trickling request headers held the HTTP check port's
    sockets forever and used up the process's descriptors, so new gRPC connections and
    /healthz failed. Every port has its own cap (a flood on one cannot take another's share)
    and the sum of the caps must fit the open-file limit (checked at start, see
    `preflight/open_files.py`). Start-only.
    """

    # Connections the kernel queues before the server accepts them (the listen backlog).
    backlog: int = Field(default=128, ge=1, le=65_535)


class GrpcConnectionLimits(PortConnectionLimits):
    """`connections:` of a gRPC port (server, admin).

    header_timeout_s bounds the TLS and HTTP/2 handshake; idle_timeout_s closes (GOAWAY) a
    connection with no RPC in flight; Envoy reconnects on demand either way.
    """

    max_connections: int = Field(default=256, ge=1, le=1_000_000)
    # Connections are closed (GOAWAY) after this long, so that clients spread again over
    # replicas; calls in flight get max_age_grace_s to finish. None: never.
    max_age_s: float | None = Field(default=3600.0, gt=0)
    max_age_grace_s: float = Field(default=30.0, ge=0, le=3600)


class RequestLimits(Strict):
    """The `request_limits:` section; read per request, so a reload applies at once.

    Envoy bounds what it accepts from clients (100 headers, 60 KiB by default), but nothing
    bounds what reaches us; both transports measure a check request's head against these
    before building its header map (see services/request_limits.py).
    """

    # Above Envoy's own defaults (100 headers, 60 KiB), which it adds a few headers to.
    max_headers: int = Field(default=200, ge=1, le=10_000)
    # Header names and values plus the path and host, in characters.
    max_header_bytes: int = Field(default=96 * 1024, ge=1024, le=4 * 1024 * 1024)


class ServerTls(Strict):
    """TLS for the gRPC port; with `client_ca_file`, mutual TLS (Envoy presents a cert).

    Certificate files are re-read when they change (checked at each new connection), so a
    rotated certificate (cert-manager, SPIRE) is served without a restart.
    """

    cert_file: Path
    key_file: Path
    client_ca_file: Path | None = None
    # Globs over the client certificate's SANs (URI SAN / SPIFFE ID or DNS name); empty:
    # any certificate the CA signed.
    allowed_client_sans: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _sans_need_mtls(self) -> ServerTls:
        if self.allowed_client_sans and self.client_ca_file is None:
            raise ValueError("allowed_client_sans needs client_ca_file (mutual TLS)")
        return self


class ServerSettings(Strict):
    listen: str = "127.0.0.1:9001"
    grace_period_s: float = Field(default=5.0, ge=0)
    # On SIGTERM: keep answering this long after health turns NOT_SERVING, so that health
    # checkers (Envoy's, Kubernetes readiness) steer traffic away before the port closes.
    drain_delay_s: float = Field(default=0.0, ge=0, le=60)
    # Watch the config file and reload on change (SIGHUP always reloads).
    watch_config: bool = True
    # Beyond this many RPCs in flight, new ones are refused at once with RESOURCE_EXHAUSTED
    # (Envoy's ext_authz then answers status_on_error, fail closed) instead of queueing.
    # At ~0.5 ms of CPU per Check, 256 waiting calls are ~130 ms of work on one core: beyond
    # that, shedding beats queueing. None removes the bound (not advised).
    max_concurrent_rpcs: int | None = Field(default=256, ge=1)
    # gRPC's own default is 4 MiB; a CheckRequest within request_limits is far smaller (add
    # Envoy's with_request_body.max_request_bytes if it sends bodies).
    max_receive_message_bytes: int = Field(default=512 * 1024, ge=16 * 1024, le=64 * 1024 * 1024)
    connections: GrpcConnectionLimits = GrpcConnectionLimits()
    tls: ServerTls | None = None
    # The asyncio event loop the process runs on. "auto": uvloop when it is installed (a
    # dependency; cheaper per call on both transports, see benchmarks/README.md), else
    # asyncio's own. `serve --loop` overrides it.
    event_loop: Literal["auto", "uvloop", "asyncio"] = "auto"


class AdminSettings(Strict):
    """The admin gRPC API (explain, reload, status, revoke, quotas) on its own port."""

    # None disables it. Loopback by default; any other address requires a token or mTLS.
    listen: str | None = "127.0.0.1:9002"
    # "sha256:<hex>" of the admin bearer token (`authz-service hash-key`).
    token_hash: Sha256Hash | None = None
    # Serve it with server.tls's certificate (so an exposed token is never sent in clear);
    # with server.tls.client_ca_file, callers must present a certificate that CA signed.
    tls: bool = False
    connections: GrpcConnectionLimits = GrpcConnectionLimits(max_connections=16, max_age_s=None)

    @property
    def exposed(self) -> bool:
        if self.listen is None:
            return False
        return self.listen.rpartition(":")[0].strip("[]") not in {"127.0.0.1", "localhost", "::1"}
