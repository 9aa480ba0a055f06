"""Self-signed client certificates for certificate-binding tests (RFC 8705)."""

from __future__ import annotations

import datetime
import hashlib
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def self_signed_certificate(name: str = "client") -> x509.Certificate:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .sign(key, hashes.SHA256())
    )


def pem(certificate: x509.Certificate) -> str:
    return certificate.public_bytes(serialization.Encoding.PEM).decode()


def sha256_hex(certificate: x509.Certificate) -> str:
    return hashlib.sha256(certificate.public_bytes(serialization.Encoding.DER)).hexdigest()


@dataclass(frozen=True)
class ClientCertificate:
    """A client certificate and its key on disk, for a TLS client (`ssl_context`)."""

    certificate: x509.Certificate
    cert_file: Path
    key_file: Path

    def ssl_context(self, ca_file: Path) -> ssl.SSLContext:
        """Trust the server's `ca_file` and present this certificate."""
        context = ssl.create_default_context(cafile=str(ca_file))
        context.load_cert_chain(str(self.cert_file), str(self.key_file))
        return context


class ClientCertificateAuthority:
    """A CA that a gateway's mTLS listener trusts, issuing client certificates into `out`."""

    def __init__(self, out: Path) -> None:
        self.out = out
        out.mkdir(parents=True, exist_ok=True)
        self._key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test client CA")])
        self.certificate = (
            _valid_for_an_hour(x509.CertificateBuilder().subject_name(name).issuer_name(name))
            .public_key(self._key.public_key())
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .sign(self._key, hashes.SHA256())
        )
        self.ca_file = out / "client-ca.crt"
        self.ca_file.write_text(pem(self.certificate))

    def issue(self, name: str) -> ClientCertificate:
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        certificate = (
            _valid_for_an_hour(
                x509.CertificateBuilder()
                .subject_name(subject)
                .issuer_name(self.certificate.subject)
            )
            .public_key(key.public_key())
            .add_extension(
                x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
            )
            .sign(self._key, hashes.SHA256())
        )
        cert_file, key_file = self.out / f"{name}.crt", self.out / f"{name}.key"
        cert_file.write_text(pem(certificate))
        key_file.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        return ClientCertificate(certificate, cert_file, key_file)


def _valid_for_an_hour(builder: x509.CertificateBuilder) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.UTC)
    return (
        builder.serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
    )
