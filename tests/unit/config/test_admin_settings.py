"""When the admin API may listen beyond loopback: only when its callers are authenticated,
by a token or by mutual TLS."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from tests.support.authz_config import api_key_hash, config_from, open_policy

TLS = {"cert_file": "/tls/server.crt", "key_file": "/tls/server.key"}
MUTUAL_TLS = {**TLS, "client_ca_file": "/tls/ca.crt"}


def config(admin: dict[str, Any], tls: dict[str, str] | None = None) -> dict[str, Any]:
    server: dict[str, Any] = {"tls": tls} if tls else {}
    return {"server": server, "admin": admin, "policies": open_policy()}


def test_an_exposed_admin_port_with_mutual_tls_needs_no_token() -> None:
    admin = {"listen": "0.0.0.0:9002", "tls": True}
    assert config_from(config(admin, MUTUAL_TLS)).admin.exposed


def test_an_exposed_admin_port_with_a_token_needs_no_tls() -> None:
    admin = {"listen": "0.0.0.0:9002", "token_hash": api_key_hash("admin-secret")}
    assert config_from(config(admin)).admin.exposed


@pytest.mark.parametrize(
    ("admin", "tls"),
    [
        ({"listen": "0.0.0.0:9002"}, None),
        ({"listen": "10.0.0.5:9002", "tls": True}, TLS),  # TLS without client certificates
    ],
    ids=["nothing", "tls-without-client-ca"],
)
def test_an_exposed_admin_port_without_a_token_or_mutual_tls_is_refused(
    admin: dict[str, Any], tls: dict[str, str] | None
) -> None:
    with pytest.raises(ValidationError, match="is not loopback"):
        config_from(config(admin, tls))


def test_admin_tls_without_a_server_certificate_is_refused() -> None:
    with pytest.raises(ValidationError, match=r"set server\.tls"):
        config_from(config({"listen": "127.0.0.1:9002", "tls": True}))
