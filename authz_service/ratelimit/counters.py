"""Which counters a request touches: their names, and the store hits that count them.

    {domain|key=value|...}|<limit tag>       one counter per limit of a matched descriptor
    {_auth_failures|client_ip=<subject>}     the brute-force lockout of one client

The braces are the Redis Cluster hash tag: every counter of one descriptor lives in one slot,
so one script applies all of that descriptor's limits atomically.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import quote

from authz_service.ratelimit.lockout_subject import lockout_subject
from authz_service.ratelimit.results import Entry
from authz_service.ratelimit.rules import Limit
from authz_service.ratelimit.store import Hit
from authz_service.schema import BruteForceSettings

BRUTE_FORCE_DOMAIN = "_auth_failures"


def _escape(text: str) -> str:
    # Keeps `|`, `=` and the hash-tag braces unambiguous inside counter names.
    return quote(text, safe="") if any(c in text for c in "|={}%") else text


def counter_base(domain: str, entries: Iterable[Entry]) -> str:
    """`{domain|k=v|...}`: the braces are the Redis Cluster hash tag, one slot per descriptor."""
    parts = [_escape(domain), *(f"{_escape(k)}={_escape(v)}" for k, v in entries)]
    return "{" + "|".join(parts) + "}"


def limit_hit(base: str, limit: Limit, hits: int) -> Hit:
    """`hits` on the counter of `limit` for the descriptor named `base` (0: only look)."""
    return Hit(
        key=f"{base}|{limit.counter_tag}",
        algorithm=limit.algorithm if limit.algorithm != "gcra" else "token_bucket",
        limit=limit.requests_per_unit,
        window_s=limit.window_s,
        hits=hits,
        charge_rejected=limit.charge_rejected,
    )


def lockout_hit(client_ip: str, settings: BruteForceSettings, hits: int) -> Hit:
    """`hits` failed authentications of this client (0: only look whether it is locked out)."""
    subject = lockout_subject(client_ip, settings.ipv6_prefix_length)
    return Hit(
        key=counter_base(BRUTE_FORCE_DOMAIN, [("client_ip", subject)]),
        algorithm="lockout",
        limit=settings.max_failures,
        window_s=settings.window,
        hits=hits,
        lockout_s=settings.lockout,
    )
