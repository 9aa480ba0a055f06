"""The `authz-service` command line: serve, check-config, explain, hash-key, health,
check-descriptors, and `admin` (a client of the admin gRPC API)."""

from authz_service.cli.main import main

# `authz-service = "authz_service.cli:main"` (pyproject.toml) is the console script.
__all__ = ["main"]
