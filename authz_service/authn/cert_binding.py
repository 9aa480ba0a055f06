"""Certificate-bound tokens (RFC 8705): a token whose `cnf.x5t#S256` names a certificate is
accepted only from a client that presented that certificate over mTLS.

The thumbprint is base64url (no padding) of the SHA-256 of the certificate's DER. Where the
certificate comes from (the trust rules, docs/security.md):
- gRPC ext_authz: the peer certificate Envoy includes in the CheckRequest
  (`include_peer_certificate: true`), a URL-encoded PEM of the client certificate Envoy itself
  verified on the downstream TLS connection;
- HTTP check endpoint: the `Hash=` element of `x-forwarded-client-cert` (the hex SHA-256 of
  the DER), only when `mtls.trust_forwarded_client_cert` says the proxy in front sanitises the
  header (Envoy `forward_client_cert_details: SANITIZE_SET`); otherwise a client could write it.
"""

from __future__ import annotations

import base64
import hashlib
import re
import ssl
from urllib.parse import unquote

_HEX_SHA256 = re.compile(r"[0-9a-fA-F]{64}")


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def thumbprint_of_der(der: bytes) -> str:
    return _b64url(hashlib.sha256(der).digest())


def thumbprint_of_envoy_certificate(url_encoded_pem: str) -> str:
    """`x5t#S256` of the certificate Envoy includes in a CheckRequest, or "" if unreadable."""
    if not url_encoded_pem:
        return ""
    try:
        der = ssl.PEM_cert_to_DER_cert(unquote(url_encoded_pem).strip())
    except ValueError:
        return ""
    return thumbprint_of_der(der)


def thumbprint_of_xfcc(value: str) -> str:
    """`x5t#S256` from the first (the client's) element of an XFCC header's `Hash=`, or ""."""
    first = value.split(",", 1)[0]
    for pair in first.split(";"):
        key, _, hash_value = pair.partition("=")
        if key.strip().lower() == "hash" and _HEX_SHA256.fullmatch(hash_value.strip().strip('"')):
            return _b64url(bytes.fromhex(hash_value.strip().strip('"')))
    return ""
