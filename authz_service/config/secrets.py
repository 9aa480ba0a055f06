"""Secrets a config points at (a Redis password, an introspection client secret; in a file or
an environment variable) must be readable when the config is loaded: a missing one is a
config error naming the setting and its line, for `check-config`, `serve` and a reload
alike, not a traceback on first connect."""

from __future__ import annotations

from typing import TYPE_CHECKING

from authz_service.config.errors import ConfigError
from authz_service.config.yaml_source import LinePath
from authz_service.schema import RedisSettings

if TYPE_CHECKING:  # the loader imports the model, which imports our settings
    from authz_service.config.loader import LoadedConfig


def _redis_sections(loaded: LoadedConfig) -> list[tuple[LinePath, RedisSettings]]:
    config = loaded.config
    sections: list[tuple[LinePath, RedisSettings]] = []
    if config.rate_limit is not None and config.rate_limit.store == "redis":
        sections.append((("rate_limit", "redis"), config.rate_limit.redis))
    if config.revocation.store == "redis":
        sections.append((("revocation", "redis"), config.revocation.redis))
    return sections


def check_secrets(loaded: LoadedConfig) -> None:
    """Raise ConfigError naming every password source that cannot be read."""
    problems = []
    for path, redis in _redis_sections(loaded):
        field = "password_file" if redis.password_file is not None else "password_env"
        try:
            redis.resolved_password()
        except (ValueError, OSError) as error:
            reason = getattr(error, "strerror", None) or str(error)
            if isinstance(error, OSError):
                reason = f"cannot read {redis.password_file}: {reason}"
            line = loaded.lines.get((*path, field)) or loaded.lines.get(path)
            where = f"{loaded.path}:{line}" if line else str(loaded.path)
            problems.append(f"{where}: {'.'.join(map(str, (*path, field)))}: {reason}")
    for index, provider in enumerate(loaded.config.introspection_providers):
        path = ("introspection_providers", index)
        field = "client_secret_file" if provider.client_secret_file else "client_secret_env"
        try:
            provider.resolved_secret()
        except (ValueError, OSError) as error:
            reason = getattr(error, "strerror", None) or str(error)
            if isinstance(error, OSError):
                reason = f"cannot read {provider.client_secret_file}: {reason}"
            line = loaded.lines.get((*path, field)) or loaded.lines.get(path)
            where = f"{loaded.path}:{line}" if line else str(loaded.path)
            problems.append(f"{where}: {'.'.join(map(str, (*path, field)))}: {reason}")
    if problems:
        raise ConfigError("\n".join(problems))
