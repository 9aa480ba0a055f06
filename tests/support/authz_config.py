"""Building authz_service configurations for tests: as objects, or as YAML files on disk."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import yaml

from authz_service.schema import Config


def api_key_hash(key: str) -> str:
    return "sha256:" + hashlib.sha256(key.encode()).hexdigest()


def config_from(document: dict[str, Any]) -> Config:
    return Config.model_validate(document)


def write_config(path: Path, document: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def open_policy(name: str = "default") -> dict[str, Any]:
    """A policy that allows everything: the smallest valid config body."""
    return {name: {"rules": [{"name": "open", "allow": "anonymous"}]}}
