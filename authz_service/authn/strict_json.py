"""Strict decoding of one base64url JSON segment of a compact JWS.

Every byte is attacker-controlled, so anything a lenient decoder would guess at is refused:
characters outside the base64url alphabet (and padding, RFC 7515 §2), bytes that are not
UTF-8 (RFC 7519 §7.2; no BOM, no UTF-16), lone surrogate escapes, NaN/Infinity (not JSON),
duplicate members (parsers disagree on which wins) and nesting deeper than `MAX_DEPTH`.
The depth bound is checked before parsing: Python's recursive parser raises RecursionError,
not ValueError, on deep input.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import Any

from authz_service.errors import CredentialError

# Real access tokens nest a handful of levels (realm_access.roles, resource_access.x.roles).
MAX_DEPTH = 32

_BASE64URL = re.compile(r"[A-Za-z0-9_-]*")
# A string, or an unterminated one to the end: one left-to-right pass, never a rescan from
# each quote (which made `"\"\"\"...` quadratic).
_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"?', re.DOTALL)
# An innermost array or object: no bracket inside (strings already removed).
_INNERMOST = re.compile(r"\[[^\[\]{}]*\]|\{[^\[\]{}]*\}")
_BRACKETS = re.compile(r"[\[\]{}]")
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


class SegmentError(CredentialError):
    """The segment is not strict base64url-encoded JSON; the message says why."""


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            # Parsers disagree on which duplicate wins; an ambiguous token is a forged token.
            raise SegmentError(f"duplicate member {key[:64]!r} in token")
        result[key] = value
    return result


def _not_json(constant: str) -> Any:
    raise SegmentError(f"{constant} is not JSON")


def _within_depth(text: str) -> bool:
    if text.count("[") + text.count("{") <= MAX_DEPTH:
        return True  # the common case: too few brackets to nest deeper, whatever the strings
    structure = _JSON_STRING.sub('""', text)
    for _ in range(MAX_DEPTH):
        stripped = _INNERMOST.sub("0", structure)
        if stripped == structure:
            break
        structure = stripped
    # Brackets left after MAX_DEPTH passes are nested deeper (or unbalanced: not JSON anyway).
    return _BRACKETS.search(structure) is None


def _has_lone_surrogate(text: str, value: Any) -> bool:
    if _SURROGATE_ESCAPE.search(text) is None:
        return False  # no escape that could produce one: the usual case, no re-encoding
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def decode_segment(segment: str) -> Any:
    """The JSON value of a base64url segment; raises SegmentError when it is not strict."""
    if _BASE64URL.fullmatch(segment) is None or len(segment) % 4 == 1:
        raise SegmentError("token segments are not base64url-encoded")
    try:
        raw = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
        text = raw.decode("utf-8")
    except (binascii.Error, UnicodeDecodeError) as error:
        raise SegmentError("token segments are not base64url-encoded UTF-8") from error
    if not _within_depth(text):
        raise SegmentError(f"token JSON nests deeper than {MAX_DEPTH} levels")
    try:
        value = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_not_json)
    except SegmentError:
        raise
    except (ValueError, RecursionError) as error:
        # ValueError includes numbers beyond int's digit limit; RecursionError should be
        # unreachable after the depth check, but a crash here must never become a 503.
        raise SegmentError("token segments are not JSON") from error
    if _has_lone_surrogate(text, value):
        raise SegmentError("token JSON has an unpaired surrogate escape")
    return value
