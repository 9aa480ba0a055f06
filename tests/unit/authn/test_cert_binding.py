"""Certificate thumbprints (RFC 8705 x5t#S256) as the transports read them."""

from __future__ import annotations

import base64
from typing import Any
from urllib.parse import quote

from authz_service.authn.cert_binding import (
    thumbprint_of_envoy_certificate,
    thumbprint_of_xfcc,
)
from tests.support.client_certs import pem, self_signed_certificate, sha256_hex


def x5t(hex_digest: str) -> str:
    return base64.urlsafe_b64encode(bytes.fromhex(hex_digest)).rstrip(b"=").decode()


def test_the_envoy_peer_certificate_gives_the_rfc8705_thumbprint() -> None:
    certificate = self_signed_certificate()
    encoded = quote(pem(certificate), safe="")
    assert thumbprint_of_envoy_certificate(encoded) == x5t(sha256_hex(certificate))


def test_an_absent_or_unreadable_certificate_gives_no_thumbprint() -> None:
    assert thumbprint_of_envoy_certificate("") == ""
    assert thumbprint_of_envoy_certificate("not%20a%20certificate") == ""


def test_xfcc_hash_of_the_first_element_is_the_client_thumbprint() -> None:
    client, proxy = self_signed_certificate("client"), self_signed_certificate("proxy")
    header = (
        f'By=spiffe://gw;Hash={sha256_hex(client)};Subject="CN=client",'
        f"By=spiffe://edge;Hash={sha256_hex(proxy)}"
    )
    assert thumbprint_of_xfcc(header) == x5t(sha256_hex(client))


def test_xfcc_without_a_well_formed_hash_gives_no_thumbprint() -> None:
    assert thumbprint_of_xfcc("By=spiffe://gw;Hash=xyz") == ""
    assert thumbprint_of_xfcc("") == ""


def test_the_http_transport_reads_xfcc_only_from_a_trusted_proxy_when_told_to() -> None:
    from authz_service.http.check_translate import _forwarded_client_cert
    from authz_service.schema import HttpCheckSettings

    class Received:
        peer = "127.0.0.1"
        headers = {"x-forwarded-client-cert": "Hash=" + "ab" * 32}

    on = HttpCheckSettings(trust_forwarded_client_cert=True)
    received: Any = Received()
    assert _forwarded_client_cert(received, on) == x5t("ab" * 32)
    assert _forwarded_client_cert(received, HttpCheckSettings()) == ""
    received.peer = "203.0.113.9"  # not a trusted proxy: it could have written the header
    assert _forwarded_client_cert(received, on) == ""
