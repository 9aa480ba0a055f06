"""Reading roles, scopes and other values out of verified claims."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

MAX_HEADER_VALUE = 1024


def claim_at(claims: Mapping[str, Any], dotted_path: str) -> Any:
    """The value at a dotted path ("realm_access.roles"); None when any step is missing.

    A claim whose own name contains dots (e.g. a namespaced URL) is found too: the longest
    literal key is tried before descending.
    """
    if dotted_path in claims:
        return claims[dotted_path]
    current: Any = claims
    parts = dotted_path.split(".")
    index = 0
    while index < len(parts):
        if not isinstance(current, Mapping):
            return None
        for end in range(len(parts), index, -1):
            key = ".".join(parts[index:end])
            if key in current:
                current = current[key]
                index = end
                break
        else:
            return None
    return current


def as_strings(value: Any) -> list[str]:
    """A claim as a list of strings: lists are kept, strings split on whitespace."""
    if value is None:
        return []
    if isinstance(value, str):
        return value.split()
    if isinstance(value, list | tuple):
        return [item for item in value if isinstance(item, str)]
    return []


def collect(claims: Mapping[str, Any], paths: Iterable[str]) -> frozenset[str]:
    values: set[str] = set()
    for path in paths:
        values.update(as_strings(claim_at(claims, path)))
    return frozenset(values)


def header_safe(value: Any) -> str:
    """A claim rendered as a header value: no control characters, bounded length."""
    if isinstance(value, list | tuple):
        text = ",".join(str(item) for item in value)
    elif isinstance(value, bool):
        text = "true" if value else "false"
    elif value is None:
        text = ""
    else:
        text = str(value)
    cleaned = "".join(ch for ch in text if ch >= " " and ch != "\x7f")
    return cleaned[:MAX_HEADER_VALUE]
