"""An oracle for path-confusion tests, independent of the service's own canonicalisation.

`spellings(raw)` is every path some upstream might take a raw request path for: as sent,
percent-decoded once or twice, backslashes read as slashes, dot segments resolved, slashes
merged, case folded (see `spellings` for which combinations). A request that is *allowed*
must not be an admin path under any of them, unless the caller may see admin paths.
"""

from __future__ import annotations

import posixpath
import re
import string
from urllib.parse import unquote

_UNRESERVED = frozenset(string.ascii_letters + string.digits + "-._~")


def spellings(raw_path: str) -> set[str]:
    path = re.split(r"[?#]", raw_path, maxsplit=1)[0]
    # As forwarded by a proxy doing RFC 3986 normalisation (Envoy's normalize_path): only
    # unreserved characters decoded; then as a server that does not decode further...
    out = _resolved(_decode_unreserved(path))
    # Servers that decode the path (most) resolve dot segments and may fold case (IIS).
    for decoded in {unquote(path), unquote(unquote(path))}:
        resolved = _resolved(decoded)
        out |= resolved | {spelled.lower() for spelled in resolved}
    return out


def _decode_unreserved(path: str) -> str:
    def decode(match: re.Match[str]) -> str:
        char = chr(int(match.group(1), 16))
        return char if char in _UNRESERVED else match.group(0)

    return re.sub("%([0-9A-Fa-f]{2})", decode, path)


def _resolved(path: str) -> set[str]:
    out: set[str] = set()
    for variant in {path, path.replace("\\", "/")}:
        # `;params` per segment (Tomcat, Jetty) and everything after a NUL (C strings).
        for cut in {variant, re.sub(r";[^/]*", "", variant), variant.split("\x00", 1)[0]}:
            normalised = posixpath.normpath(re.sub("/+", "/", "/" + cut.lstrip("/")))
            if cut.endswith("/") and normalised != "/":
                normalised += "/"
            stripped = re.sub(r"\.+(?=/|$)", "", normalised)  # "admin." as Windows reads it
            out.update({normalised, stripped})
    return out


def reaches(raw_path: str, prefix: str) -> bool:
    """Whether any reading of `raw_path` is `prefix` or below it (prefix without a slash)."""
    return any(s == prefix or s.startswith(prefix + "/") for s in spellings(raw_path))
