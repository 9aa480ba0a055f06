"""TLS and mutual TLS for the gRPC port, with certificate hot reload and a SAN allow-list.

gRPC asks `_fetch` for the certificate configuration on every new connection; it answers
None (keep the current one) unless a file's modification time changed, so a rotated
certificate is picked up without a restart and without per-request cost.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import grpc

from authz_service.authz.globs import compile_glob
from authz_service.schema import ServerTls

log = logging.getLogger(__name__)


class ReloadingCertificates:
    def __init__(self, settings: ServerTls) -> None:
        self._settings = settings
        self._files = [settings.cert_file, settings.key_file] + (
            [settings.client_ca_file] if settings.client_ca_file else []
        )
        self._stamps = self._mtimes()
        self.initial = self._configuration()
        self.reloads = 0

    def _mtimes(self) -> tuple[float, ...]:
        return tuple(path.stat().st_mtime_ns for path in self._files)

    def _configuration(self) -> Any:
        settings = self._settings
        client_ca = settings.client_ca_file.read_bytes() if settings.client_ca_file else None
        return grpc.ssl_server_certificate_configuration(
            [(settings.key_file.read_bytes(), settings.cert_file.read_bytes())],
            root_certificates=client_ca,
        )

    def fetch(self) -> Any:
        """Called by gRPC per handshake: a new configuration only when the files changed."""
        try:
            stamps = self._mtimes()
            if stamps == self._stamps:
                return None
            configuration = self._configuration()
        except OSError as error:  # mid-rotation or removed: keep serving the last good one
            log.warning("TLS certificate reload failed, keeping the current one: %s", error)
            return None
        self._stamps = stamps
        self.reloads += 1
        log.info("TLS certificates reloaded")
        return configuration


def server_credentials(settings: ServerTls) -> tuple[grpc.ServerCredentials, ReloadingCertificates]:
    certificates = ReloadingCertificates(settings)
    credentials = grpc.dynamic_ssl_server_credentials(
        certificates.initial,
        certificates.fetch,
        require_client_authentication=settings.client_ca_file is not None,
    )
    return credentials, certificates


def client_credentials(
    ca_file: str, cert_file: str | None = None, key_file: str | None = None
) -> grpc.ChannelCredentials:
    """For our own clients (health, admin CLI): trust `ca_file`; present a cert for mTLS."""
    with open(ca_file, "rb") as ca:
        root = ca.read()
    key = cert = None
    if cert_file and key_file:
        with open(key_file, "rb") as key_pem, open(cert_file, "rb") as cert_pem:
            key, cert = key_pem.read(), cert_pem.read()
    return grpc.ssl_channel_credentials(root, key, cert)


def client_channel(
    address: str, ca_file: str | None, cert_file: str | None, key_file: str | None
) -> grpc.Channel:
    """A blocking channel for the CLIs: TLS when a CA file is given, else plain text."""
    if ca_file:
        return grpc.secure_channel(address, client_credentials(ca_file, cert_file, key_file))
    return grpc.insecure_channel(address)


def peer_sans(auth_context: dict[str, list[bytes]]) -> list[str]:
    values = auth_context.get("x509_subject_alternative_name", [])
    return [value.decode("utf-8", "replace") for value in values]


class ClientSanInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Refuses calls whose client certificate carries none of the allowed SANs."""

    def __init__(self, allowed: list[str]) -> None:
        self._allowed = [compile_glob(pattern) for pattern in allowed]

    def update(self, allowed: list[str]) -> None:
        """A reloaded allow-list, in force for the next call (empty: any certificate the CA
        signed)."""
        self._allowed = [compile_glob(pattern) for pattern in allowed]

    def allows(self, sans: list[str]) -> bool:
        return any(pattern.fullmatch(san) for pattern in self._allowed for san in sans)

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        if handler is None or handler.unary_unary is None or not self._allowed:
            return handler
        inner = handler.unary_unary
        interceptor = self

        async def checked(request: Any, context: grpc.aio.ServicerContext) -> Any:
            sans = peer_sans(context.auth_context())
            if not interceptor.allows(sans):
                await context.abort(
                    grpc.StatusCode.PERMISSION_DENIED, "client certificate not allowed"
                )
            return await inner(request, context)

        return grpc.unary_unary_rpc_method_handler(
            checked,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
