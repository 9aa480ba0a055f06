"""Canonical request paths, so a protected path cannot be reached by another spelling.

Envoy's `normalize_path` and `merge_slashes` should already do this; we do it again because
policy must not depend on a proxy setting being right.
"""

from __future__ import annotations

import re
from urllib.parse import unquote

from authz_service.errors import AmbiguousRequest

# Encoded separators change what a path means to different servers: refuse them outright.
# So does double encoding: `%252e%252e` is `..` to anything that decodes once more than we do.
_AMBIGUOUS_ENCODINGS = ("%2f", "%5c", "%00", "%25")
# A decoded `?` or `#` is part of a segment: keep it encoded so the result stays a path.
_REENCODE = str.maketrans({"?": "%3F", "#": "%23"})


class AmbiguousPath(AmbiguousRequest):
    """A path an upstream could read differently from us (encoded separators, dot segments)."""


_CONTROL = re.compile("[\x00-\x1f\x7f]")
_ENCODED = re.compile("%[0-9A-Fa-f]{2}")


def canonical_path(raw_path: str) -> str:
    """Strip query/fragment, decode, resolve dot segments, merge slashes.

    Raises AmbiguousPath for encoded slashes/backslashes/NULs, encoded dot segments (`%2e`),
    dot segments with parameters (`..;x`), double encoding (`%25`, `%%32e`), backslashes
    and control chars. The result is idempotent:
    canonical_path(result) == result.
    """
    path = raw_path
    for separator in ("?", "#"):
        cut = path.find(separator)
        if cut != -1:
            path = path[:cut]
    lowered = path.lower()
    if any(token in lowered for token in _AMBIGUOUS_ENCODINGS) or "\\" in path:
        raise AmbiguousPath("encoded or backslash path separators are not accepted")
    try:
        decoded = unquote(path, errors="strict") if "%" in path else path
    except UnicodeDecodeError:
        raise AmbiguousPath("percent-encoding is not valid UTF-8") from None
    if decoded is not path and _ENCODED.search(decoded):
        # `%%32e` has no `%25` and is `%2e` after one decoding, `.` after two: whatever
        # still looks encoded once decoded is double encoding, refused like `%252e`.
        raise AmbiguousPath("double percent-encoding is not accepted")
    if decoded is not path and any(
        "%" in segment and unquote(segment) in (".", "..") for segment in path.split("/")
    ):
        # Servers disagree on `%2e%2e`: one that does not decode it (nginx passes
        # $request_uri through) reads `/admin/%2e%2e/public` as a path under /admin/, while
        # decoding gives /public. Envoy's normalize_path leaves none of these for us to see.
        raise AmbiguousPath("encoded dot segments are not accepted")
    if ";" in decoded and any(
        segment.partition(";")[0] in (".", "..") for segment in decoded.split("/")
    ):
        # Tomcat, Jetty and Spring cut `;params` before resolving: `/public/..;/admin` is
        # /admin to them and a segment named `..;` under /public/ to a proxy. Refuse it.
        # Envoy's normalize_path resolves `..;` itself but passes a decoded `%2e%2e;` on.
        raise AmbiguousPath("dot segments with parameters are not accepted")
    if _CONTROL.search(decoded):
        raise AmbiguousPath("control characters in path")
    if not decoded.startswith("/"):
        decoded = "/" + decoded
    segments: list[str] = []
    for segment in decoded.split("/"):
        if segment in ("", "."):
            continue
        if segment == "..":
            if segments:
                segments.pop()
            continue
        segments.append(segment)
    trailing = "/" if decoded.endswith("/") and segments else ""
    return ("/" + "/".join(segments) + trailing).translate(_REENCODE)


def without_parameters(path: str) -> str:
    """A canonical path as a Servlet container reads it: `;params` cut from every segment.

    `/admin;x/users` is /admin/users to Tomcat, Jetty and Spring. Only for the output of
    canonical_path: it has resolved `.` and `..` and refused `..;`, so cutting leaves no dot
    segment to resolve, only empty segments to merge. Nothing is decoded again.
    """
    segments = [segment.partition(";")[0] for segment in path.split("/")]
    kept = [segment for segment in segments if segment]
    trailing = "/" if kept and not segments[-1] else ""
    return "/" + "/".join(kept) + trailing
