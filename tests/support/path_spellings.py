"""An oracle for path- and host-confusion tests, independent of the service's own code.

`spellings(raw)` is every path some upstream might take a raw request path for:

- Envoy (`normalize_path`): unreserved characters decoded, dot segments resolved; it forwards
  a decoded `%2e%2e;` unresolved, so the next server reads `..;` its own way;
- nginx and Traefik pass the request target on as received: the upstream decodes it once
  (most servers) or twice (a framework decoding again), may read `\\` as `/` (Windows, some
  Java servers), cut everything after a NUL (C strings), fold case (IIS) and drop trailing
  dots of a segment (Windows);
- Servlet containers (Tomcat, Jetty, Spring) cut `;params` from every segment, before or
  after decoding, and then resolve dot segments: `/public/..;/admin` is /admin to them.

A request that is *allowed* must be allowed under every one of them: an anonymous allow
only when every spelling is open to anyone, an admin path only for the admin role.
`host_spellings(raw)` does the same for a Host header: case, port and trailing dots.
"""

from __future__ import annotations

import posixpath
import re
import string
from urllib.parse import unquote, urlsplit

_UNRESERVED = frozenset(string.ascii_letters + string.digits + "-._~")
_PARAMETERS = re.compile(r";[^/]*")


def spellings(raw_path: str) -> set[str]:
    path = re.split(r"[?#]", raw_path, maxsplit=1)[0]
    # As forwarded by a proxy doing RFC 3986 normalisation (Envoy's normalize_path): only
    # unreserved characters decoded; then as a server that does not decode further...
    out = _resolved(_decode_unreserved(path))
    # Servers that decode the path (most) resolve dot segments and may fold case (IIS);
    # a Servlet container may cut `;params` before decoding (Tomcat) rather than after.
    for decoded in {unquote(path), unquote(unquote(path)), unquote(_PARAMETERS.sub("", path))}:
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
        for cut in {variant, _PARAMETERS.sub("", variant), variant.split("\x00", 1)[0]}:
            normalised = posixpath.normpath(re.sub("/+", "/", "/" + cut.lstrip("/")))
            # RFC 3986 keeps the slash after a final dot segment: /a/b/.. is /a/.
            last = cut.rstrip("/").rsplit("/", 1)[-1]
            if (cut.endswith("/") or last in (".", "..")) and normalised != "/":
                normalised += "/"
            stripped = re.sub(r"\.+(?=/|$)", "", normalised)  # "admin." as Windows reads it
            out.update({normalised, stripped})
    return out


def reaches(raw_path: str, prefix: str) -> bool:
    """Whether any reading of `raw_path` is `prefix` or below it (prefix without a slash)."""
    return any(s == prefix or s.startswith(prefix + "/") for s in spellings(raw_path))


def host_spellings(raw_host: str) -> set[str]:
    """Every virtual host name an upstream may take a Host header for: as sent, case folded,
    without the port, without trailing dots (`admin.example.com.` is a fully qualified name)."""
    out = {raw_host, raw_host.lower()}
    try:
        hostname = urlsplit("//" + raw_host).hostname  # lower-cased, port and [] removed
    except ValueError:
        hostname = None
    if hostname is not None:
        out.add(f"[{hostname}]" if ":" in hostname else hostname)
    return out | {spelled.rstrip(".") for spelled in out}
