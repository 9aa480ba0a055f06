"""Generate the configuration reference and the JSON Schema from the config model itself.

    python -m tools.config_reference            # rewrite docs/configuration.md and the schema
    python -m tools.config_reference --check    # exit 1 if either differs (CI)

docs/configuration.md lists every setting: its type, default, whether a reload applies it
(SIGHUP or a file change) or it needs a restart, and the comment beside it in the model.
docs/config.schema.json is the model's JSON Schema, for editors (yaml-language-server:
`# yaml-language-server: $schema=<path>/docs/config.schema.json` on a config file's first
line gives completion and checks while typing).
"""

from __future__ import annotations

import argparse
import inspect
import json
import re
import sys
import types
import typing
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from authz_service.schema import Config

REPO_ROOT = Path(__file__).resolve().parents[1]
REFERENCE = REPO_ROOT / "docs" / "configuration.md"
SCHEMA = REPO_ROOT / "docs" / "config.schema.json"

# Read once at start (listeners, TLS setup, telemetry exporters, stores): a reload logs the
# change and keeps running with the old value until the service restarts.
RESTART_ONLY = ("server.", "telemetry.", "revocation.", "admin.", "http_check.")
RESTART_ONLY_RATE_LIMIT = (
    "rate_limit.store",
    "rate_limit.redis.",
    "rate_limit.circuit_breaker.",
    "rate_limit.local_over_limit_cache",
    "rate_limit.local_cache_max_entries",
)
# Read when used, so a reload applies them.
APPLIED_BY_RELOAD = ("server.drain_delay_s",)


@dataclass(frozen=True)
class Row:
    path: str
    type: str
    default: str
    applied: str
    note: str


def _comments(model: type[BaseModel]) -> dict[str, str]:
    """The comment lines above (or beside) each field in the model's source."""
    notes: dict[str, str] = {}
    for cls in reversed(model.__mro__):
        if not (isinstance(cls, type) and issubclass(cls, BaseModel)) or cls is BaseModel:
            continue
        try:
            lines = inspect.getsource(cls).splitlines()
        except (OSError, TypeError):
            continue
        pending: list[str] = []
        for line in lines[1:]:
            stripped = line.strip()
            if stripped.startswith("#"):
                pending.append(stripped.lstrip("#").strip())
                continue
            field = re.match(r"^\s{4}(\w+)\s*:", line)
            if field:
                inline = line.split("#", 1)[1].strip() if " # " in line else ""
                notes[field.group(1)] = " ".join([*pending, inline]).strip()
            pending = []
    return notes


def _strip(annotation: Any) -> Any:
    while typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    return annotation


def _type_name(annotation: Any) -> str:
    annotation = _strip(annotation)
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Literal:
        return " \\| ".join(f"`{value}`" for value in args)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(arg) for arg in args if arg is not type(None)) + (
            " or null" if type(None) in args else ""
        )
    if origin in (list, tuple, set, frozenset):
        return f"list of {_type_name(args[0])}" if args else "list"
    if origin is dict:
        return f"map of {_type_name(args[1])}"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "mapping"
    if annotation is Path:
        return "path"
    return getattr(annotation, "__name__", str(annotation))


def _default(field: Any) -> str:
    if field.default is PydanticUndefined and field.default_factory is None:
        return "required"
    value = field.default_factory() if field.default_factory is not None else field.default
    if isinstance(value, BaseModel):
        return "(see below)"
    if isinstance(value, Path):
        value = str(value)
    if isinstance(value, tuple | frozenset | set):
        value = list(value)
    try:
        return f"`{json.dumps(value)}`"
    except TypeError:
        return f"`{value}`"


def _models_in(annotation: Any) -> Iterator[tuple[str, type[BaseModel]]]:
    """(path suffix, model) for each model a field holds: itself, list items, map values."""
    annotation = _strip(annotation)
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield "", annotation
    elif origin in (typing.Union, types.UnionType):
        for arg in args:
            yield from _models_in(arg)
    elif origin in (list, tuple):
        for suffix, model in _models_in(args[0]) if args else ():
            yield "[]" + suffix, model
    elif origin is dict:
        for suffix, model in _models_in(args[1]):
            yield ".<name>" + suffix, model


def _applied(path: str) -> str:
    if path.startswith(APPLIED_BY_RELOAD):
        return "reload"
    if (path + ".").startswith(RESTART_ONLY) or path.startswith(RESTART_ONLY_RATE_LIMIT):
        return "restart"
    return "reload"


def rows(
    model: type[BaseModel] = Config,
    prefix: str = "",
    ancestors: tuple[type[BaseModel], ...] = (),
) -> list[Row]:
    found: list[Row] = []
    ancestors = (*ancestors, model)
    notes = _comments(model)
    for name, field in model.model_fields.items():
        path = f"{prefix}{name}"
        note = (field.description or notes.get(name, "")).replace("|", "\\|")
        found.append(Row(path, _type_name(field.annotation), _default(field), _applied(path), note))
        seen: set[type[BaseModel]] = set()
        for suffix, sub in _models_in(field.annotation):
            if sub in seen or sub in ancestors:
                continue  # nested descriptors repeat their parent's shape: listed once
            seen.add(sub)
            found += rows(sub, f"{path}{suffix}.", ancestors)
    return found


def reference() -> str:
    lines = [
        "<!-- GENERATED by `python -m tools.config_reference` from authz_service/config: do not",
        "     edit; change the model (and its comments) and regenerate. CI fails on drift. -->",
        "# Configuration reference",
        "",
        "Every setting of the service's YAML config file. Unknown keys are errors. **Applied**:",
        "`reload` takes effect on SIGHUP or when the file changes (the directory is watched);",
        "`restart` is read once at start (listeners, TLS, exporters, stores): a reload keeps",
        "the running value until the service restarts. An editor can check a config while you",
        "type with the JSON Schema [`config.schema.json`](config.schema.json): put",
        "`# yaml-language-server: $schema=<path to>/docs/config.schema.json` on its first line.",
        "",
        "| Setting | Type | Default | Applied | Notes |",
        "|---|---|---|---|---|",
    ]
    for row in rows():
        lines.append(f"| `{row.path}` | {row.type} | {row.default} | {row.applied} | {row.note} |")
    return "\n".join(lines) + "\n"


def schema() -> str:
    document = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "authz_service configuration",
        **Config.model_json_schema(mode="validation"),
    }
    return json.dumps(document, indent=2) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if a file is stale")
    args = parser.parse_args(argv)
    outputs = {REFERENCE: reference(), SCHEMA: schema()}
    if args.check:
        stale = [p for p, text in outputs.items() if not p.exists() or p.read_text() != text]
        for path in stale:
            print(
                f"{path.relative_to(REPO_ROOT)} is stale: run python -m tools.config_reference",
                file=sys.stderr,
            )
        return 1 if stale else 0
    for path, text in outputs.items():
        path.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
