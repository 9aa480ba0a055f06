"""What every section of our config files shares: unknown keys are errors and values are
frozen; header names, secret digests and durations as configs write them; and the error a
check across fields raises to point at one of them."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema

_HEADER_NAME = re.compile(r"^[a-z0-9!#$%&'*+.^_`|~-]+$")
# A secret's digest as configs hold it ("sha256:<hex>", from `authz-service hash-key`).
SHA256_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*$")
_DURATION_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FieldError(ValueError):
    """A check across fields that one field fails: `loc` (relative to the model) names it,
    so that the loader can point at that field's line rather than at the whole model."""

    def __init__(self, message: str, loc: tuple[str | int, ...]):
        super().__init__(message)
        self.loc = loc


def header_name(value: str) -> str:
    """The name lower-cased (HTTP/2 and Envoy normalise them), or ValueError if not a token."""
    lowered = value.lower()
    if not _HEADER_NAME.match(lowered):
        raise ValueError(f"{value!r} is not a valid HTTP header name")
    return lowered


def first_repeat(values: list[str]) -> int | None:
    """The index of the first value seen before, or None when all are distinct."""
    seen: set[str] = set()
    for index, value in enumerate(values):
        if value in seen:
            return index
        seen.add(value)
    return None


def _sha256_hash(value: str) -> str:
    if not SHA256_DIGEST.match(value):
        raise ValueError("must be 'sha256:' followed by 64 lower-case hex digits")
    return value


def parse_duration(value: Any) -> float:
    """'30s', '5m', '1.5h', '250ms' or a number of seconds -> seconds."""
    if isinstance(value, bool):
        raise ValueError("a duration is a number of seconds or a string like '30s', '5m'")
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str) and (match := _DURATION.match(value)):
        return float(match.group(1)) * _DURATION_SECONDS[match.group(2) or "s"]
    raise ValueError(f"{value!r} is not a duration: use a number of seconds or '30s', '5m', '1h'")


HeaderName = Annotated[str, Field(min_length=1)]
Sha256Hash = Annotated[str, AfterValidator(_sha256_hash)]
Duration = Annotated[
    float,
    BeforeValidator(parse_duration),
    Field(gt=0),
    # What the file may hold (the validator turns it into seconds), for the JSON Schema.
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "number", "exclusiveMinimum": 0},
                {"type": "string", "pattern": _DURATION.pattern},
            ]
        }
    ),
]
