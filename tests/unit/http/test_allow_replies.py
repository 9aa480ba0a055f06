"""The HTTP check endpoint's allow replies: reused for a repeated identity on Envoy, built per
request where the gateway takes the whole Cookie header from the reply (NGINX, Traefik)."""

from __future__ import annotations

from authz_service.http.check_endpoint import HttpCheckTransport, Subrequest
from authz_service.schema import Endpoint, HttpCheckSettings
from tests.unit.services.test_allow_cache import allowed, compiled, request

WIRE = Subrequest("GET", "/x", (), "127.0.0.1")


def test_envoy_gets_the_same_encoded_reply_for_a_repeated_identity() -> None:
    transport = HttpCheckTransport(
        Endpoint(path="/envoy", integration="envoy"), HttpCheckSettings()
    )
    config = compiled()

    first = transport.answer(WIRE, allowed(), config, request(cookie="theme=dark"))
    again = transport.answer(WIRE, allowed(), config, request(cookie="theme=dark"))

    assert again is first
    assert (b"x-user-id", b"alice") in first.encoded_headers


def test_nginx_gets_each_requests_own_cookies_back_for_a_repeated_identity() -> None:
    transport = HttpCheckTransport(
        Endpoint(path="/nginx", integration="nginx"), HttpCheckSettings()
    )
    config = compiled()

    replies = [
        transport.answer(WIRE, allowed(), config, request(cookie=cookie))
        for cookie in ("theme=dark", "theme=light")
    ]

    assert [reply.headers.get("cookie") for reply in replies] == ["theme=dark", "theme=light"]
