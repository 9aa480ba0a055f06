"""A bounded LRU of verified tokens, each kept until the token's own expiry.

A hit skips signature verification (77-170 us per token here), which costs as much as the
whole gRPC call. Only successes are cached: a failure is cheap to reproduce and caching it
would let an attacker evict good entries.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

from authz_service.decisions import Identity


class TokenCache:
    def __init__(self, max_entries: int = 10_000, wall_clock: Callable[[], float] = time.time):
        self._entries: OrderedDict[str, Identity] = OrderedDict()
        self._max_entries = max_entries
        self._wall_clock = wall_clock
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, token: str) -> Identity | None:
        identity = self._entries.get(token)
        if identity is None:
            self.misses += 1
            return None
        if identity.expires_at is not None and identity.expires_at <= self._wall_clock():
            del self._entries[token]
            self.misses += 1
            return None
        self._entries.move_to_end(token)
        self.hits += 1
        return identity

    def put(self, token: str, identity: Identity) -> None:
        if self._max_entries <= 0:
            return
        self._entries[token] = identity
        self._entries.move_to_end(token)
        while len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)

    def clear(self) -> None:
        self._entries.clear()
