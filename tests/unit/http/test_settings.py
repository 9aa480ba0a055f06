"""The `http_check:` section: defaults, validation errors."""

from __future__ import annotations

from ipaddress import ip_network
from typing import Any

import pytest
from pydantic import ValidationError

from authz_service.schema import Config, HttpCheckSettings
from tests.support.authz_config import open_policy


def test_defaults_mount_every_integration_on_loopback() -> None:
    settings = HttpCheckSettings()
    assert settings.listen == "127.0.0.1:9003"
    assert [(e.path, e.integration) for e in settings.endpoints] == [
        ("/envoy", "envoy"),
        ("/nginx", "nginx"),
        ("/traefik", "traefik"),
    ]
    assert settings.trusted_proxies == [ip_network("127.0.0.1/32"), ip_network("::1/128")]


def test_config_accepts_an_http_check_section() -> None:
    config = Config.model_validate(
        {
            "policies": open_policy(),
            "http_check": {
                "listen": "0.0.0.0:9003",
                "trusted_proxies": ["10.0.0.0/8"],
                "endpoints": [
                    {"path": "/nginx/internal", "integration": "nginx", "context": {"policy": "x"}}
                ],
                "nginx": {"uri_header": "X-Auth-URI"},
            },
        }
    )
    assert config.http_check is not None
    assert config.http_check.nginx.uri_header == "x-auth-uri"
    assert config.http_check.endpoints[0].context == {"policy": "x"}


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"trusted_proxies": ["not-a-network"]}, "does not appear to be an IPv4 or IPv6"),
        ({"endpoints": [{"path": "nginx", "integration": "nginx"}]}, "absolute path"),
        ({"endpoints": [{"path": "/", "integration": "nginx"}]}, "absolute path"),
        ({"endpoints": [{"path": "/a/", "integration": "nginx"}]}, "absolute path"),
        ({"endpoints": [{"path": "/a", "integration": "haproxy"}]}, "'envoy', 'nginx' or"),
        (
            {
                "endpoints": [
                    {"path": "/a", "integration": "nginx"},
                    {"path": "/a/b", "integration": "traefik"},
                ]
            },
            "overlap",
        ),
        ({"endpoints": []}, "at least 1"),
        ({"nginx": {"uri_header": "bad header"}}, "not a valid HTTP header name"),
        ({"listne": "x"}, "Extra inputs"),
    ],
)
def test_invalid_sections_are_refused(section: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        HttpCheckSettings.model_validate(section)
