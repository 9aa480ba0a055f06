"""Read a config written for another filesystem (a container's) with its paths mapped here.

`compose/authz/config.yaml` names `/etc/authz-limits`, a path that exists only inside the
container. `authz-service check-config --map-path /etc/authz-limits=examples/ratelimit/domains`
checks it on the host with everything it points at, instead of failing on the path.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path, PurePosixPath
from typing import Any, cast

from pydantic import BaseModel

from authz_service.config.loader import ConfigError, LoadedConfig
from authz_service.schema import Config

PathMap = Mapping[PurePosixPath, Path]


def parse_path_maps(items: Sequence[str]) -> dict[PurePosixPath, Path]:
    """`FROM=TO` items -> {FROM: absolute TO}; TO is relative to the working directory."""
    mapping: dict[PurePosixPath, Path] = {}
    for item in items:
        source, sep, target = item.partition("=")
        if not sep or not source or not target:
            raise ConfigError(f"--map-path {item!r}: expected FROM=TO, e.g. /etc/x=compose/x")
        mapping[PurePosixPath(source)] = Path(os.path.abspath(target))
    return mapping


def _mapped(value: str, mapping: PathMap) -> str | None:
    path = PurePosixPath(value)
    for source, target in mapping.items():
        if path == source or source in path.parents:
            return str(target / path.relative_to(source))
    return None


def _remap(model: BaseModel, mapping: PathMap) -> BaseModel:
    """A copy of `model` with every path-valued setting under a mapped prefix rewritten."""
    update: dict[str, Any] = {}
    for name in type(model).model_fields:
        value = getattr(model, name)
        if isinstance(value, BaseModel):
            remapped = _remap(value, mapping)
            if remapped is not value:
                update[name] = remapped
        elif isinstance(value, list) and any(isinstance(item, BaseModel) for item in value):
            items = [_remap(i, mapping) if isinstance(i, BaseModel) else i for i in value]
            if any(new is not old for new, old in zip(items, value, strict=True)):
                update[name] = items
        elif isinstance(value, Path | str) and (name.endswith(("_file", "_dir", "_path"))):
            mapped = _mapped(str(value), mapping)
            if mapped is not None:
                update[name] = Path(mapped) if isinstance(value, Path) else mapped
    return model.model_copy(update=update) if update else model


def remap_paths(loaded: LoadedConfig, mapping: PathMap) -> LoadedConfig:
    if not mapping:
        return loaded
    return replace(loaded, config=cast(Config, _remap(loaded.config, mapping)))


__all__ = ["parse_path_maps", "remap_paths"]
