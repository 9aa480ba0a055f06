"""Token revocation: by `jti` until the token expires, or every token of a subject issued
before a time. Zero trust without waiting for tokens to expire.

Every Check consults an in-process `RevocationList` (no I/O on the request path). With the
Redis store, a revocation is written to Redis (with a TTL, so entries end when the tokens do)
and published on a channel; every replica applies published revocations at once and re-reads
the full set periodically, which covers messages missed while disconnected and new replicas.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable
from typing import Any, Protocol

from authz_service.decisions import Identity
from authz_service.schema import RedisSettings, RevocationSettings

log = logging.getLogger(__name__)

# How long a starting replica tries to read the stored revocations before serving anyway.
_START_SYNC_TIMEOUT_S = 3.0
_START_RETRY_S = 0.1


class RevocationList:
    """The in-process view. Entries expire by themselves."""

    def __init__(self, wall_clock: Callable[[], float] = time.time) -> None:
        self._jti: dict[str, float] = {}  # jti -> expires at
        self._subjects: dict[str, tuple[float, float]] = {}  # issuer|subject -> (before, expires)
        self._clock = wall_clock

    def __len__(self) -> int:
        return len(self._jti) + len(self._subjects)

    def add_jti(self, jti: str, expires_at: float) -> None:
        self._jti[jti] = max(expires_at, self._jti.get(jti, 0.0))

    def add_subject(self, issuer: str, subject: str, before: float, expires_at: float) -> None:
        key = f"{issuer}|{subject}"
        previous = self._subjects.get(key)
        if previous is None or previous[0] < before:
            self._subjects[key] = (before, expires_at)

    def is_revoked(self, identity: Identity) -> bool:
        if not self._jti and not self._subjects:
            return False
        now = self._clock()
        # An opaque token is revoked by its `jti` or by its digest ("sha256:<hex>").
        for token_id in (identity.token_id, identity.token_digest):
            if not token_id:
                continue
            expires = self._jti.get(token_id)
            if expires is not None:
                if expires > now:
                    return True
                del self._jti[token_id]
        # A subject revoked without an issuer is revoked for every issuer.
        for key in (f"{identity.issuer}|{identity.principal}", f"|{identity.principal}"):
            entry = self._subjects.get(key)
            if entry is None:
                continue
            before, expires = entry
            if expires <= now:
                del self._subjects[key]
            elif identity.issued_at is None or identity.issued_at < before:
                return True
        return False

    def apply(self, message: dict[str, Any]) -> None:
        """Apply one revocation as published/stored (see `encode`)."""
        if message.get("kind") == "jti":
            self.add_jti(str(message["jti"]), float(message["expires_at"]))
        elif message.get("kind") == "subject":
            self.add_subject(
                str(message.get("issuer", "")),
                str(message["subject"]),
                float(message["before"]),
                float(message["expires_at"]),
            )


# Builds a redis.asyncio client (standalone or cluster) from settings, without connecting.
# Passed in by the process wiring, so that this module does not load the quota store.
RedisClientFactory = Callable[[RedisSettings], Any]


class RevocationStore(Protocol):
    revocations: RevocationList
    description: str

    async def start(self) -> None: ...
    async def close(self) -> None: ...
    async def revoke_jti(self, jti: str, expires_at: float) -> None: ...
    async def revoke_subject(
        self, issuer: str, subject: str, before: float, expires_at: float
    ) -> None: ...


class MemoryRevocationStore:
    """One process only: revocations are not shared with other replicas."""

    description = "memory"

    def __init__(self, revocations: RevocationList | None = None) -> None:
        self.revocations = revocations if revocations is not None else RevocationList()

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def revoke_jti(self, jti: str, expires_at: float) -> None:
        self.revocations.add_jti(jti, expires_at)

    async def revoke_subject(
        self, issuer: str, subject: str, before: float, expires_at: float
    ) -> None:
        self.revocations.add_subject(issuer, subject, before, expires_at)


class RedisRevocationStore:
    description = "redis"

    def __init__(
        self,
        settings: RevocationSettings,
        create_client: RedisClientFactory,
        revocations: RevocationList | None = None,
    ) -> None:
        """`create_client` builds a redis.asyncio client from settings without connecting
        (the quota store's, ratelimit/redis_store.py: same TLS, credentials and timeouts)."""
        self.revocations = revocations if revocations is not None else RevocationList()
        self._settings = settings
        self._prefix = settings.redis.key_prefix
        self._channel = self._prefix + "events"
        # The same connection options as the quota store (TLS, credentials, timeouts); the
        # subscription reads without a socket timeout, so it needs its own long-lived client.
        self._client: Any = create_client(settings.redis)
        self._subscriber: Any = create_client(
            settings.redis.model_copy(update={"timeout_ms": 3_600_000})
        )
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        await self._initial_sync()
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._listen()), loop.create_task(self._sync_forever())]

    async def _initial_sync(self) -> None:
        """Read the stored revocations before the first Check is answered, so a replica that
        starts after a revocation never lets the revoked token through. Bounded: with Redis
        unreachable the service starts anyway (and keeps trying in the background)."""
        deadline = time.monotonic() + _START_SYNC_TIMEOUT_S
        while True:
            try:
                async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
                    await self.sync()
                return
            except Exception as error:
                if time.monotonic() + _START_RETRY_S >= deadline:
                    log.warning("revocation sync at start failed (%s); retrying later", error)
                    return
                await asyncio.sleep(_START_RETRY_S)

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self._client.aclose()
        await self._subscriber.aclose()

    async def revoke_jti(self, jti: str, expires_at: float) -> None:
        await self._store(
            {"kind": "jti", "jti": jti, "expires_at": expires_at}, f"jti:{jti}", expires_at
        )

    async def revoke_subject(
        self, issuer: str, subject: str, before: float, expires_at: float
    ) -> None:
        message = {
            "kind": "subject",
            "issuer": issuer,
            "subject": subject,
            "before": before,
            "expires_at": expires_at,
        }
        await self._store(message, f"sub:{issuer}|{subject}", expires_at)

    async def _store(self, message: dict[str, Any], key: str, expires_at: float) -> None:
        ttl_ms = max(1, int((expires_at - time.time()) * 1000))
        encoded = json.dumps(message)
        async with self._client.pipeline(transaction=True) as pipe:
            pipe.set(self._prefix + key, encoded, px=ttl_ms)
            pipe.publish(self._channel, encoded)
            await pipe.execute()
        self.revocations.apply(message)

    async def sync(self) -> int:
        """Read every stored revocation into the local list; returns how many were read."""
        count = 0
        async for key in self._client.scan_iter(match=self._prefix + "*", count=500):
            if _text(key) == self._channel:
                continue
            value = await self._client.get(key)
            if value:
                with contextlib.suppress(ValueError, KeyError, TypeError):
                    self.revocations.apply(json.loads(_text(value)))
                    count += 1
        return count

    async def _sync_forever(self) -> None:
        # start() and the subscriber have just read everything: begin with the interval.
        while True:
            await asyncio.sleep(self._settings.sync_interval_s)
            try:
                await self.sync()
            except Exception as error:  # Redis down: keep what we have, try again later
                log.warning("revocation sync failed: %s", error)

    async def _listen(self) -> None:
        while True:
            try:
                pubsub = self._subscriber.pubsub(ignore_subscribe_messages=True)
                await pubsub.subscribe(self._channel)
                # Anything published while we were not subscribed is picked up here.
                await self.sync()
                async for message in pubsub.listen():
                    if message.get("type") == "message":
                        with contextlib.suppress(ValueError, KeyError, TypeError):
                            self.revocations.apply(json.loads(_text(message["data"])))
            except asyncio.CancelledError:
                raise
            except Exception as error:
                log.warning("revocation subscription lost (%s); retrying", error)
                await asyncio.sleep(1.0)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def build_revocation_store(
    settings: RevocationSettings, create_client: RedisClientFactory
) -> RevocationStore:
    if settings.store == "redis":
        return RedisRevocationStore(settings, create_client)
    return MemoryRevocationStore()
