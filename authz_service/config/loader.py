"""Read a config file, validate it, and explain what is wrong in terms of the file's lines."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from authz_service.config.collector import collector_paused
from authz_service.config.errors import ConfigError
from authz_service.config.yaml_source import LinePath, parse_yaml
from authz_service.schema import Config, FieldError

__all__ = ["ConfigError", "LinePath", "LoadedConfig", "load_config_file", "parse_yaml"]

M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True, slots=True)
class LoadedConfig:
    config: Config
    path: Path
    # sha256 of the file and of the rate-limit files it points at: the config version.
    digest: str
    lines: Mapping[LinePath, int] = field(default_factory=dict)


def _line_for(loc: LinePath, lines: dict[LinePath, int]) -> int | None:
    # Pydantic's loc may contain union branch names; walk back to the nearest known path.
    path = tuple(part for part in loc if isinstance(part, int) or not _is_type_tag(part))
    while path:
        if path in lines:
            return lines[path]
        path = path[:-1]
    return lines.get(())


def _is_type_tag(part: str) -> bool:
    return part in {"Requirement", "literal['anonymous','authenticated']"} or part.startswith(
        ("function-", "literal[")
    )


def format_validation_error(error: ValidationError, source: str, lines: dict[LinePath, int]) -> str:
    problems = []
    for item in error.errors():
        loc: LinePath = tuple(item["loc"])
        cause = item.get("ctx", {}).get("error")
        if isinstance(cause, FieldError):
            loc = (*loc, *cause.loc)
        line = _line_for(loc, lines)
        field = ".".join(str(part) for part in loc if not _is_type_tag(str(part))) or "(top)"
        where = f"{source}:{line}" if line else source
        message = item["msg"]
        if item["type"] == "extra_forbidden":
            message = "unknown field (check the spelling)"
        problems.append(f"{where}: {field}: {message}")
    return "\n".join(dict.fromkeys(problems))


def validate_document(model: type[M], data: Any, source: str, lines: dict[LinePath, int]) -> M:
    if data is None:
        raise ConfigError(f"{source}: the file is empty")
    if not isinstance(data, dict):
        raise ConfigError(f"{source}:1: the top level must be a mapping of settings")
    try:
        return model.model_validate(data)
    except ValidationError as error:
        raise ConfigError(format_validation_error(error, source, lines)) from None


def read_file(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as error:
        raise ConfigError(f"{path}: cannot read: {error.strerror or error}") from None


def load_config_file(
    path: str | Path, extra_checks: Callable[[Config], None] | None = None
) -> LoadedConfig:
    """Load and validate `path`. Raises ConfigError with every problem found."""
    with collector_paused():
        return _load(Path(path), extra_checks)


def _load(file_path: Path, extra_checks: Callable[[Config], None] | None) -> LoadedConfig:
    raw = read_file(file_path)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{file_path}: not UTF-8 text") from None
    data, lines = parse_yaml(text, str(file_path))
    config = validate_document(Config, data, str(file_path), lines)
    if extra_checks is not None:
        extra_checks(config)
    digest = hashlib.sha256(raw)
    for extra in _referenced_files(config, file_path.parent):
        digest.update(extra.name.encode() + b"\0" + read_file(extra))
    return LoadedConfig(config=config, path=file_path, digest=digest.hexdigest(), lines=lines)


def included_directory(config: Config, base_dir: Path) -> Path | None:
    """The directory of envoyproxy/ratelimit files the config pulls in, if it exists.

    Absolute but with symlinks kept: a ConfigMap mount swaps its `..data` link, and a path
    resolved through it names a folder the kubelet deletes at the next update.
    """
    if config.rate_limit is None or config.rate_limit.config_dir is None:
        return None
    directory = Path(os.path.abspath(base_dir / config.rate_limit.config_dir))
    return directory if directory.is_dir() else None


def _referenced_files(config: Config, base_dir: Path) -> list[Path]:
    """Files the config pulls in: a change to any of them is a new config version."""
    directory = included_directory(config, base_dir)
    if directory is None:
        return []
    return sorted(p for p in directory.iterdir() if p.suffix in {".yaml", ".yml"} and p.is_file())
