"""The Cookie header without the token cookies: what the upstream gets with strip_credentials.

The authenticator reads cookies with `http.cookies.SimpleCookie`, which also splits on
whitespace and reads quoted values; an upstream framework may split on `,` too (two Cookie
headers joined by a proxy). So a `;`-separated pair is dropped when the token cookie's name
starts it or follows any of those separators inside it, and the result is read once more with
the authenticator's own parser: if a token cookie can still be read from it, no cookie is
kept at all. Removing too much only costs the upstream a cookie; too little leaks a token.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from authz_service.authn.authenticator import read_cookie


def _name_pattern(names: Iterable[str]) -> re.Pattern[str]:
    alternatives = "|".join(re.escape(name) for name in sorted(names))
    return re.compile(rf"(?:^|[\s,;])(?:{alternatives})\s*=")


class CookieStripper:
    """Removes the named cookies from a Cookie header value."""

    def __init__(self, names: Iterable[str]):
        self.names = frozenset(names)
        self._pattern = _name_pattern(self.names) if self.names else None

    def may_carry_token(self, cookie_header: str) -> bool:
        """A cheap first look: False means `cut` would return the header unchanged."""
        return any(name in cookie_header for name in self.names)

    def cut(self, cookie_header: str) -> str:
        """The header without the token cookies; "" when nothing is left to send."""
        pattern = self._pattern
        if pattern is None or not self.may_carry_token(cookie_header):
            return cookie_header
        kept = [
            pair.strip()
            for pair in cookie_header.split(";")
            if pair.strip() and not pattern.search(pair.strip())
        ]
        result = "; ".join(kept)
        if any(read_cookie(result, name) is not None for name in self.names):
            return ""
        return result
