"""Introspection answers kept for a while, keyed by the token's digest (never the token).

An active token's identity is kept until the token's `exp`, at most `active_max_s`; an
inactive answer for `inactive_s`. Bounded (LRU): a flood of distinct bad tokens evicts old
entries rather than growing memory. The revocation stage still runs on every cached
identity, so a token revoked through this service is refused at once, cached or not.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from authz_service.decisions import AuthnFailure, Identity
from authz_service.schema import IntrospectionCache
from authz_service.schema.secret_digest import secret_digest


def token_digest(token: str) -> str:
    """The token's "sha256:<hex>": what the cache and revocations hold of it (the digest
    `authz-service hash-key` prints, so an operator can revoke a token by it)."""
    return secret_digest(token)


@dataclass(frozen=True, slots=True)
class _Entry:
    answer: Identity | AuthnFailure
    until: float


class IntrospectionResultCache:
    def __init__(
        self, settings: IntrospectionCache, wall_clock: Callable[[], float] = time.time
    ) -> None:
        self._settings = settings
        self._clock = wall_clock
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, digest: str) -> Identity | AuthnFailure | None:
        entry = self._entries.get(digest)
        if entry is None:
            self.misses += 1
            return None
        if entry.until <= self._clock():
            del self._entries[digest]
            self.misses += 1
            return None
        self._entries.move_to_end(digest)
        self.hits += 1
        return entry.answer

    def put(self, digest: str, answer: Identity | AuthnFailure) -> None:
        now = self._clock()
        if isinstance(answer, Identity):
            until = now + self._settings.active_max_s
            if answer.expires_at is not None:
                until = min(until, answer.expires_at)
        else:
            until = now + self._settings.inactive_s
        if until <= now or self._settings.max_entries <= 0:
            return
        self._entries[digest] = _Entry(answer, until)
        self._entries.move_to_end(digest)
        while len(self._entries) > self._settings.max_entries:
            self._entries.popitem(last=False)

    def drop(self, digest: str) -> None:
        self._entries.pop(digest, None)
