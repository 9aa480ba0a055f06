"""DEVELOPMENT-ONLY certificates: a local CA, the gateway's HTTPS certificate, the service's.

    python -m tools.dev_cert --out .stack/tls            # or: ./scripts/dev-cert.sh DIR

Writes, into DIR:

    ca.crt                     the development CA (give it to curl: --cacert DIR/ca.crt)
    gateway.crt, gateway.key   Envoy's public listener (localhost, 127.0.0.1, envoy, gateway)
    authz.crt, authz.key       authz_service, for the optional Envoy -> service TLS
                               (authz-service, localhost, 127.0.0.1)

Existing files are kept unless they expire within a day, so a running stack keeps its
certificates. Only `cryptography` and the standard library are imported: the docker-compose
setup runs this file on its own. Never use these keys outside a laptop or a test run.
"""

from __future__ import annotations

import argparse
import datetime
import ipaddress
import os
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

GATEWAY_NAMES = ("localhost", "127.0.0.1", "::1", "envoy", "gateway")
AUTHZ_NAMES = ("authz-service", "localhost", "127.0.0.1")
VALIDITY = datetime.timedelta(days=30)


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "authz_service development"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _san(names: tuple[str, ...]) -> x509.SubjectAlternativeName:
    entries: list[x509.GeneralName] = []
    for name in names:
        try:
            entries.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            entries.append(x509.DNSName(name))
    return x509.SubjectAlternativeName(entries)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _write(path: Path, data: bytes, mode: int) -> None:
    path.write_bytes(data)
    os.chmod(path, mode)


def _still_valid(path: Path) -> bool:
    if not path.exists():
        return False
    cert = x509.load_pem_x509_certificate(path.read_bytes())
    remaining = cert.not_valid_after_utc - datetime.datetime.now(datetime.UTC)
    return remaining > datetime.timedelta(days=1)


def generate(out: Path, *, readable_keys: bool = False, force: bool = False) -> Path:
    """Create the CA and both leaf certificates in `out` (kept if still valid); returns `out`."""
    out.mkdir(parents=True, exist_ok=True)
    files = ("ca.crt", "gateway.crt", "gateway.key", "authz.crt", "authz.key")
    certificates = ("ca.crt", "gateway.crt", "authz.crt")
    if (
        not force
        and all((out / name).exists() for name in files)
        and all(_still_valid(out / name) for name in certificates)
    ):
        return out
    key_mode = 0o644 if readable_keys else 0o600
    now = datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=5)

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name("authz_service development CA")
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    _write(out / "ca.crt", ca_cert.public_bytes(serialization.Encoding.PEM), 0o644)

    for stem, names in (("gateway", GATEWAY_NAMES), ("authz", AUTHZ_NAMES)):
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (
            x509.CertificateBuilder()
            .subject_name(_name(names[0]))
            .issuer_name(ca_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now)
            .not_valid_after(now + VALIDITY)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_san(names), critical=False)
            .add_extension(
                x509.ExtendedKeyUsage(
                    [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
                ),
                critical=False,
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
            )
            .sign(ca_key, hashes.SHA256())
        )
        _write(out / f"{stem}.key", _key_pem(key), key_mode)
        _write(out / f"{stem}.crt", cert.public_bytes(serialization.Encoding.PEM), 0o644)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="directory for the files")
    parser.add_argument("--force", action="store_true", help="replace existing files")
    parser.add_argument(
        "--readable-keys",
        action="store_true",
        help="mode 0644 on the keys, for a container running as another user (dev only)",
    )
    args = parser.parse_args()
    out = generate(args.out, readable_keys=args.readable_keys, force=args.force)
    print(f"development certificates in {out} (CA: {out / 'ca.crt'})")


if __name__ == "__main__":
    main()
