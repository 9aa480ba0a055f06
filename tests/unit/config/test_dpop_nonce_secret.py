"""A DPoP nonce key the config points at must be readable when the config is loaded: a missing
file is a config error naming the setting and its line (check-config, serve and reload)."""

from __future__ import annotations

from pathlib import Path

import pytest

from authz_service.config.loader import ConfigError, load_config_file
from authz_service.config.secrets import check_secrets

CONFIG = """\
jwt_providers:
  - name: idp
    issuer: https://idp.example
    audiences: [api]
    jwks_uri: https://idp.example/jwks.json
    dpop:
      nonce: required
      nonce_secret_file: {secret}
policies:
  default:
    rules:
      - name: open
        allow: anonymous
"""


def test_a_missing_nonce_secret_file_is_a_config_error_at_its_line(tmp_path: Path) -> None:
    path = tmp_path / "authz.yaml"
    path.write_text(CONFIG.format(secret=tmp_path / "absent"))
    with pytest.raises(ConfigError) as error:
        check_secrets(load_config_file(path))
    assert f"{path}:8: jwt_providers.0.dpop.nonce_secret_file: cannot read" in str(error.value)


def test_a_readable_nonce_secret_file_passes_stripped_of_its_newline(tmp_path: Path) -> None:
    secret = tmp_path / "dpop-nonce"
    secret.write_text("a-nonce-key-of-enough-bytes\n")
    path = tmp_path / "authz.yaml"
    path.write_text(CONFIG.format(secret=secret))
    loaded = load_config_file(path)
    check_secrets(loaded)
    assert loaded.config.jwt_providers[0].dpop.resolved_nonce_secret() == (
        b"a-nonce-key-of-enough-bytes"
    )
