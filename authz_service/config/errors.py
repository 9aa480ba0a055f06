"""The exception a config file that cannot be used raises: `errors.ConfigError`, named here
too because config loading is where it comes from."""

from __future__ import annotations

from authz_service.errors import ConfigError

__all__ = ["ConfigError"]
