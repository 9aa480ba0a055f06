"""The gRPC port over TLS and mutual TLS: client CA, SAN allow-list, certificate hot reload."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import json
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from envoy.service.auth.v3 import external_auth_pb2, external_auth_pb2_grpc

from authz_service.admin.v1 import admin_pb2, admin_pb2_grpc
from authz_service.cli.main import main
from authz_service.server import AuthzServer
from tests.support.authz_server import running_server


@dataclass
class Issued:
    cert: bytes
    key: bytes


class Authority:
    def __init__(self) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test CA")])
        now = datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=1)
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(self.name)
            .issuer_name(self.name)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now)
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .sign(self.key, hashes.SHA256())
        )

    @property
    def pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def issue(self, common_name: str, sans: list[x509.GeneralName]) -> Issued:
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=1)
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
            .issuer_name(self.name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now)
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .sign(self.key, hashes.SHA256())
        )
        return Issued(
            cert.public_bytes(serialization.Encoding.PEM),
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ),
        )


ENVOY_ID = "spiffe://mesh.local/ns/gateway/sa/envoy"


@dataclass
class TlsServer:
    server: AuthzServer
    ca: Authority
    directory: Path

    @property
    def address(self) -> str:
        return f"localhost:{self.server.port}"


def server_names() -> list[x509.GeneralName]:
    return [x509.DNSName("localhost")]


@contextlib.asynccontextmanager
async def running_tls_server(
    tmp_path: Path, admin: dict[str, Any] | None = None
) -> AsyncIterator[TlsServer]:
    """mTLS on the gRPC port (Envoy's SPIFFE ID allowed); `admin`: the admin section."""
    ca = Authority()
    leaf = ca.issue("authz", server_names())
    (tmp_path / "ca.crt").write_bytes(ca.pem)
    (tmp_path / "server.crt").write_bytes(leaf.cert)
    (tmp_path / "server.key").write_bytes(leaf.key)
    config = {
        "server": {
            "listen": "127.0.0.1:0",
            "watch_config": False,
            "grace_period_s": 0.1,
            "tls": {
                "cert_file": str(tmp_path / "server.crt"),
                "key_file": str(tmp_path / "server.key"),
                "client_ca_file": str(tmp_path / "ca.crt"),
                "allowed_client_sans": ["spiffe://mesh.local/ns/gateway/sa/*"],
            },
        },
        "admin": admin or {"listen": None},
        "telemetry": {"metrics": {"listen": None}, "audit": {"enabled": False}},
        "policies": {"default": {"rules": [{"name": "open", "allow": "anonymous"}]}},
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    async with running_server(path, listen=None) as server:
        yield TlsServer(server, ca, tmp_path)


@pytest.fixture
async def tls_server(tmp_path: Path) -> AsyncIterator[TlsServer]:
    async with running_tls_server(tmp_path) as server:
        yield server


async def check(address: str, credentials: grpc.ChannelCredentials) -> int:
    request = external_auth_pb2.CheckRequest()
    request.attributes.request.http.path = "/"
    request.attributes.request.http.method = "GET"
    async with grpc.aio.secure_channel(address, credentials) as channel:
        stub = external_auth_pb2_grpc.AuthorizationStub(channel)
        response = await stub.Check(request, timeout=5)
        return int(response.status.code)


def client_credentials(ca: Authority, client: Issued | None) -> grpc.ChannelCredentials:
    if client is None:
        return grpc.ssl_channel_credentials(ca.pem)
    return grpc.ssl_channel_credentials(ca.pem, client.key, client.cert)


async def test_allowed_client_certificate_is_served(tls_server: TlsServer) -> None:
    envoy = tls_server.ca.issue("envoy", [x509.UniformResourceIdentifier(ENVOY_ID)])

    assert await check(tls_server.address, client_credentials(tls_server.ca, envoy)) == 0


async def test_client_without_a_certificate_is_refused(tls_server: TlsServer) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await check(tls_server.address, client_credentials(tls_server.ca, None))

    assert refused.value.code() is grpc.StatusCode.UNAVAILABLE


async def test_certificate_from_another_ca_is_refused(tls_server: TlsServer) -> None:
    stranger = Authority().issue("envoy", [x509.UniformResourceIdentifier(ENVOY_ID)])

    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await check(tls_server.address, client_credentials(tls_server.ca, stranger))

    assert refused.value.code() is grpc.StatusCode.UNAVAILABLE


async def test_client_certificate_outside_the_san_allow_list_is_denied(
    tls_server: TlsServer,
) -> None:
    other = tls_server.ca.issue(
        "batch", [x509.UniformResourceIdentifier("spiffe://mesh.local/ns/batch/sa/job")]
    )

    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await check(tls_server.address, client_credentials(tls_server.ca, other))

    assert refused.value.code() is grpc.StatusCode.PERMISSION_DENIED


async def test_plaintext_client_cannot_talk_to_the_tls_port(tls_server: TlsServer) -> None:
    request = external_auth_pb2.CheckRequest()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{tls_server.server.port}") as channel:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await external_auth_pb2_grpc.AuthorizationStub(channel).Check(request, timeout=3)

    assert refused.value.code() is grpc.StatusCode.UNAVAILABLE


async def test_rotated_server_certificate_is_served_to_new_connections(
    tls_server: TlsServer,
) -> None:
    envoy = tls_server.ca.issue("envoy", [x509.UniformResourceIdentifier(ENVOY_ID)])
    new_ca = Authority()
    rotated = new_ca.issue("authz", server_names())
    directory = tls_server.directory
    # Rotation: a new CA bundle (old + new, for clients) and a leaf from the new CA.
    (directory / "ca.crt").write_bytes(tls_server.ca.pem + new_ca.pem)
    (directory / "server.key").write_bytes(rotated.key)
    (directory / "server.crt").write_bytes(rotated.cert)
    stamp = os.stat(directory / "server.crt").st_mtime_ns + 1_000_000
    for name in ("ca.crt", "server.key", "server.crt"):
        os.utime(directory / name, ns=(stamp, stamp))

    trusting_only_new = grpc.ssl_channel_credentials(new_ca.pem, envoy.key, envoy.cert)

    assert await check(tls_server.address, trusting_only_new) == 0
    assert tls_server.server.certificates is not None
    assert tls_server.server.certificates.reloads == 1


async def admin_status(address: str, credentials: grpc.ChannelCredentials | None) -> str:
    channel = (
        grpc.aio.secure_channel(address, credentials)
        if credentials is not None
        else grpc.aio.insecure_channel(address)
    )
    async with channel:
        stub = admin_pb2_grpc.AdminServiceStub(channel)
        return str((await stub.Status(admin_pb2.StatusRequest(), timeout=5)).version)


async def test_admin_tls_serves_the_admin_api_only_to_clients_with_a_certificate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # No admin token: with admin.tls and a client CA, mutual TLS is the admin's authentication.
    admin = {"listen": "127.0.0.1:0", "tls": True}
    async with running_tls_server(tmp_path, admin) as tls:
        address = f"localhost:{tls.server.admin_port}"
        operator = tls.ca.issue("operator", [x509.DNSName("operator.local")])
        (tmp_path / "operator.crt").write_bytes(operator.cert)
        (tmp_path / "operator.key").write_bytes(operator.key)

        version = await admin_status(address, client_credentials(tls.ca, operator))
        refused = []
        for credentials in (client_credentials(tls.ca, None), None):
            with pytest.raises(grpc.aio.AioRpcError) as error:
                await admin_status(address, credentials)
            refused.append(error.value.code())
        tls_options = ["--tls-ca", str(tmp_path / "ca.crt")]
        tls_options += ["--tls-cert", str(tmp_path / "operator.crt")]
        tls_options += ["--tls-key", str(tmp_path / "operator.key")]
        argv = ["admin", "--address", address, *tls_options, "--json", "status"]
        capsys.readouterr()
        cli_status = await asyncio.to_thread(main, argv)  # the CLI's blocking client
        cli_out = capsys.readouterr().out

    assert version == tls.server.compiled_config.version
    assert cli_status == 0
    assert json.loads(cli_out)["version"] == version
    # Without a client certificate, and in plain text: no handshake, no answer.
    assert refused == [grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.UNAVAILABLE]
