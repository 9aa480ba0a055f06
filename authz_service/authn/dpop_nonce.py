"""DPoP server nonces (RFC 9449 8), valid on every replica with nothing stored per request.

A nonce is `<window>.<mac>`: the number of the time window (`now // lifetime_s`, hex) and an
HMAC-SHA256 of it under a secret all replicas share, tied to the provider's issuer. Checking
one recomputes the MAC: no store, no round trip. A nonce is accepted in its own window and the
next (so for lifetime_s to 2 x lifetime_s after it was handed out), and one window early to
tolerate replicas whose clocks disagree by less than a window.

    nonces = DpopNonces(secret, lifetime_s=300, issuer="https://idp.example")
    nonces.current(now)            # what a 401 use_dpop_nonce hands out in DPoP-Nonce
    nonces.accepts(nonce, now)     # whether a proof's nonce is current
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import math

# 128 bits of MAC: guessing one is as hard as guessing a random nonce of that size.
_MAC_BYTES = 16
# A window number in hex is at most this long (a clock past year 10^9 is not ours to serve).
_MAX_WINDOW_DIGITS = 16


class DpopNonces:
    def __init__(self, secret: bytes, *, lifetime_s: float, issuer: str) -> None:
        if lifetime_s <= 0:
            raise ValueError("lifetime_s must be positive")
        self._secret = secret
        self._lifetime_s = lifetime_s
        self._context = f"dpop-nonce\0{issuer}\0".encode()

    def _window(self, now: float) -> int:
        return math.floor(now / self._lifetime_s)

    def _mac(self, window: int) -> str:
        message = self._context + format(window, "x").encode()
        digest = hmac.digest(self._secret, message, hashlib.sha256)[:_MAC_BYTES]
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")

    def current(self, now: float) -> str:
        window = self._window(now)
        return f"{window:x}.{self._mac(window)}"

    def accepts(self, nonce: object, now: float) -> bool:
        """True for a nonce this secret made in the current window, the one before or after."""
        if not isinstance(nonce, str):
            return False
        window_hex, dot, mac = nonce.partition(".")
        if not dot or not 0 < len(window_hex) <= _MAX_WINDOW_DIGITS:
            return False
        try:
            window = int(window_hex, 16)
        except ValueError:
            return False
        if window_hex != format(window, "x"):  # one spelling per nonce
            return False
        if abs(window - self._window(now)) > 1:
            return False
        return hmac.compare_digest(mac.encode(), self._mac(window).encode())
