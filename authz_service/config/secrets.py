"""Secrets a config points at (a Redis password, a DPoP nonce key, an introspection client
secret: in a file or an environment variable) must be readable when the config is loaded: a
missing one is a config error naming the setting and its line, for `check-config`, `serve`
and a reload alike, not a traceback on first connect."""

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


def _dpop_nonce_problems(loaded: LoadedConfig) -> list[str]:
    problems = []
    for index, provider in enumerate(loaded.config.jwt_providers):
        if provider.dpop.nonce != "required":
            continue
        dpop = provider.dpop
        field = "nonce_secret_file" if dpop.nonce_secret_file is not None else "nonce_secret_env"
        try:
            dpop.resolved_nonce_secret()
        except (ValueError, OSError) as error:
            reason = getattr(error, "strerror", None) or str(error)
            if isinstance(error, OSError):
                reason = f"cannot read {dpop.nonce_secret_file}: {reason}"
            path: LinePath = ("jwt_providers", index, "dpop", field)
            line = loaded.lines.get(path) or loaded.lines.get(path[:3])
            where = f"{loaded.path}:{line}" if line else str(loaded.path)
            problems.append(f"{where}: {'.'.join(map(str, path))}: {reason}")
    return problems


def _introspection_secret_problems(loaded: LoadedConfig) -> list[str]:
    problems = []
    for index, provider in enumerate(loaded.config.introspection_providers):
        field = "client_secret_file" if provider.client_secret_file else "client_secret_env"
        try:
            provider.resolved_secret()
        except (ValueError, OSError) as error:
            reason = getattr(error, "strerror", None) or str(error)
            if isinstance(error, OSError):
                reason = f"cannot read {provider.client_secret_file}: {reason}"
            path: LinePath = ("introspection_providers", index, field)
            line = loaded.lines.get(path) or loaded.lines.get(path[:2])
            where = f"{loaded.path}:{line}" if line else str(loaded.path)
            problems.append(f"{where}: {'.'.join(map(str, path))}: {reason}")
    return problems


def check_secrets(loaded: LoadedConfig) -> None:
    """Raise ConfigError naming every password, DPoP nonce key or introspection client secret
    source that cannot be read."""
    problems = _dpop_nonce_problems(loaded) + _introspection_secret_problems(loaded)
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
    if problems:
        raise ConfigError("\n".join(problems))
