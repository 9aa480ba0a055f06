"""One-time tokens: refuse a second use of the same `jti` until the token expires.

Per provider (`jwt_providers[].replay_protection`). A verified token's `jti` is recorded in
the quota store, so every replica sharing a Redis store refuses the replay; with the memory
store the protection is per process. The record is one GCRA key (`token_bucket`, one token,
no key windowing) whose period runs until the token's `exp` plus the provider's leeway: the
first use takes the token, any later use before that instant finds the bucket empty, and the
key expires by itself once the token could not be accepted anyway. Two replicas racing on the
same `jti` are decided by one atomic store call (the Redis Lua script), so exactly one wins.

This runs after verification (and after the verified-token cache, whose hits must count as
uses too): the `jti` is then the issuer's, not the caller's choice. Only a hash of issuer and
`jti` is stored.

    guard = ReplayGuard.for_providers(config.jwt_providers, store)   # None: nobody opted in
    verdict = await guard.check(identity)                             # ReplayVerdict
    verdict = await guard.peek(identity)    # what check would answer, recording nothing
"""

from __future__ import annotations

import enum
import hashlib
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Protocol

from authz_service.decisions import Identity
from authz_service.ratelimit.outages import StoreOutages
from authz_service.ratelimit.store import Hit, QuotaStore, StoreUnavailable
from authz_service.schema import ReplayProtection

KEY_PREFIX = "jti:"


class ProviderLike(Protocol):
    @property
    def issuer(self) -> str: ...

    @property
    def leeway_s(self) -> float: ...

    @property
    def replay_protection(self) -> ReplayProtection: ...


class ReplayVerdict(enum.Enum):
    NOT_TRACKED = "not_tracked"  # not a JWT, or its provider did not opt in
    FIRST_USE = "first_use"
    REPLAYED = "replayed"  # deny: 401 token_replayed
    MISSING_JTI = "missing_jti"  # deny: 401 missing_claim
    STORE_UNAVAILABLE = "store_unavailable"  # deny: 503 (failure_mode "unavailable")

    @property
    def allowed(self) -> bool:
        return self in (ReplayVerdict.NOT_TRACKED, ReplayVerdict.FIRST_USE)


def replay_key(issuer: str, jti: str) -> str:
    digest = hashlib.sha256(f"{issuer}\0{jti}".encode("utf-8", "surrogatepass")).hexdigest()
    return KEY_PREFIX + digest[:40]


class ReplayGuard:
    def __init__(
        self,
        settings: Mapping[str, tuple[ReplayProtection, float]],
        store: QuotaStore,
        wall_clock: Callable[[], float] = time.time,
        outages: StoreOutages | None = None,
    ) -> None:
        """`settings`: issuer -> (its replay protection, its leeway in seconds)."""
        self._settings = {issuer: value for issuer, value in settings.items() if value[0].enabled}
        self._store = store
        self._wall_clock = wall_clock
        self._outages = outages if outages is not None else StoreOutages()

    @classmethod
    def for_providers(
        cls,
        providers: Iterable[ProviderLike],
        store: QuotaStore,
        wall_clock: Callable[[], float] = time.time,
        outages: StoreOutages | None = None,
    ) -> ReplayGuard | None:
        settings = {p.issuer: (p.replay_protection, p.leeway_s) for p in providers}
        if not any(protection.enabled for protection, _ in settings.values()):
            return None
        return cls(settings, store, wall_clock, outages)

    async def check(self, identity: Identity) -> ReplayVerdict:
        """Record this use of the identity's token; say whether it may proceed."""
        return await self._verdict(identity, record=True)

    async def peek(self, identity: Identity) -> ReplayVerdict:
        """What `check` would answer now, recording nothing (explain): REPLAYED once used."""
        return await self._verdict(identity, record=False)

    async def _verdict(self, identity: Identity, *, record: bool) -> ReplayVerdict:
        entry = self._settings.get(identity.issuer) if identity.issuer else None
        if entry is None:
            return ReplayVerdict.NOT_TRACKED
        protection, leeway_s = entry
        if not identity.token_id:
            return ReplayVerdict.MISSING_JTI if protection.require_jti else ReplayVerdict.FIRST_USE
        now = self._wall_clock()
        # Until the token can no longer be accepted: exp + leeway (at least one second).
        expires_at = identity.expires_at if identity.expires_at is not None else now
        period = max(1.0, expires_at + leeway_s - now)
        hit = Hit(
            key=replay_key(identity.issuer, identity.token_id),
            algorithm="token_bucket",
            limit=1,
            window_s=period,
            hits=1 if record else 0,
            charge_rejected=False,
        )
        try:
            (verdict,) = await self._store.apply([hit], now)
        except StoreUnavailable as error:
            consequence = (
                "one-time tokens accepted untracked"
                if protection.failure_mode == "allow"
                else "one-time tokens refused (503)"
            )
            self._outages.failed("replay", consequence, error)
            if protection.failure_mode == "allow":
                return ReplayVerdict.FIRST_USE
            return ReplayVerdict.STORE_UNAVAILABLE
        self._outages.answered("replay")
        # Looking takes nothing: the token was used when the bucket holds less than one.
        unused = verdict.allowed if record else verdict.remaining >= 1
        return ReplayVerdict.FIRST_USE if unused else ReplayVerdict.REPLAYED
