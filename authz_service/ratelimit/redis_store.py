"""QuotaStore on Redis: one EVALSHA per call, atomic, whatever the number of hits.

Standalone Redis: every key of the batch goes in one script call (one round trip).
Redis Cluster: a script may only touch keys of one hash slot, and we do not want a whole domain
in one slot. Each descriptor's keys share a hash tag (`{domain|key=value...}`, set by the
limiter), so the batch is split by slot and one script per slot runs, concurrently; with three
descriptors that is up to three parallel round trips, each atomic for its descriptor.
Time comes from the caller (`now`), as in envoyproxy/ratelimit; replicas' clocks should agree
to well within a window.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import ssl
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.cluster import RedisCluster
from redis.backoff import NoBackoff
from redis.exceptions import NoScriptError, RedisError
from redis.retry import Retry

from authz_service.ratelimit.algorithms import (
    Verdict,
    bucket_millis,
    bucket_window_millis,
    emission,
)
from authz_service.ratelimit.lua import ALGORITHM_CODES, SCRIPT
from authz_service.ratelimit.redis_cluster_pipeline import PipelinedCluster
from authz_service.ratelimit.redis_pipeline import PipelinedRedis, RedisAddress, tls_context
from authz_service.ratelimit.store import Hit, StoreUnavailable, key_layout
from authz_service.schema import RedisSettings

_SHA = hashlib.sha1(SCRIPT.encode()).hexdigest()

Client = Redis | RedisCluster
StoreClient = Client | PipelinedRedis | PipelinedCluster  # what RedisStore runs its script on
ClusterClient = RedisCluster | PipelinedCluster


def _connection_options(settings: RedisSettings) -> dict[str, Any]:
    options: dict[str, Any] = {
        "username": settings.username,
        "password": settings.resolved_password(),
        "socket_timeout": settings.timeout_ms / 1000,
        "socket_connect_timeout": settings.connect_timeout_ms / 1000,
        # Fail fast: the circuit breaker, not client retries, decides when to try again.
        "retry": Retry(NoBackoff(), 0),
    }
    tls = settings.tls
    if tls is not None:
        options.update(
            # rediss:// already picks TLS connections, which refuse an `ssl` argument; the
            # cluster client is told by `ssl` instead.
            ssl=True if settings.cluster else None,
            ssl_ca_certs=str(tls.ca_file) if tls.ca_file else None,
            ssl_certfile=str(tls.cert_file) if tls.cert_file else None,
            ssl_keyfile=str(tls.key_file) if tls.key_file else None,
            ssl_cert_reqs=ssl.CERT_NONE if tls.insecure_skip_verify else ssl.CERT_REQUIRED,
        )
    return {key: value for key, value in options.items() if value is not None}


def pipelined_client(settings: RedisSettings) -> PipelinedRedis | PipelinedCluster:
    """Pipelined connections, not yet connected: one to a standalone Redis, one per master of
    a cluster. rediss:// always encrypts: without a `tls` section, against the system's CAs,
    as redis-py does."""
    address = RedisAddress.from_url(settings.url, settings.username, settings.resolved_password())
    tls = settings.tls
    context = None
    if tls is not None:

        def path(value: object) -> str | None:
            return str(value) if value else None

        context = tls_context(
            path(tls.ca_file),
            path(tls.cert_file),
            path(tls.key_file),
            verify=not tls.insecure_skip_verify,
        )
    elif address.tls:
        context = tls_context(None, None, None, verify=True)
    timeouts = settings.timeout_ms / 1000, settings.connect_timeout_ms / 1000
    if settings.cluster:
        return PipelinedCluster(address, *timeouts, context)
    return PipelinedRedis(address, *timeouts, context)


def create_client(settings: RedisSettings) -> Redis | RedisCluster:
    """Build a redis-py client without connecting: an unreachable Redis must not stop the
    service."""
    options = _connection_options(settings)
    if settings.cluster:
        return RedisCluster.from_url(settings.url, max_connections=settings.pool_size, **options)
    pool = BlockingConnectionPool.from_url(
        settings.url,
        max_connections=settings.pool_size,
        timeout=settings.timeout_ms / 1000,
        **options,
    )
    return Redis.from_pool(pool)  # owns the pool: aclose() closes its connections


def _bucket_arguments(hit: Hit) -> list[str]:
    """A token bucket's window_ms and emission (see lua.py); zeros for other algorithms."""
    if hit.algorithm != "token_bucket":
        return ["0", "0", "0"]
    window_ms = bucket_window_millis(hit.window_s)
    whole, part = emission(hit.hits, hit.limit, window_ms) if hit.limit > 0 else (0, 0)
    return [str(window_ms), str(whole), str(part)]


def _arguments(hits: Sequence[Hit], now: float, prefix: str) -> tuple[list[str], list[str]]:
    keys: list[str] = []
    args: list[str] = [repr(float(now)), str(bucket_millis(now))]
    for hit in hits:
        layout = key_layout(hit, now)
        keys.extend(prefix + key for key in layout.keys)
        args += [
            ALGORITHM_CODES[hit.algorithm],
            str(hit.limit),
            repr(float(hit.window_s)),
            str(hit.hits),
            "1" if hit.charge_rejected else "0",
            repr(float(layout.position.elapsed)),
            str(layout.ttl_ms),
            repr(float(hit.lockout_s)),
            *_bucket_arguments(hit),
        ]
    return keys, args


def _verdicts(raw: Sequence[Sequence[Any]]) -> list[Verdict]:
    return [Verdict(bool(int(a)), int(r), float(reset)) for a, r, reset in raw]


class RedisStore:
    def __init__(self, client: StoreClient, key_prefix: str = "", pool_size: int = 0) -> None:
        """`pool_size`: the client's connection cap (a cluster client's, per node); 0 when
        unknown."""
        self._client = client
        self._prefix = key_prefix
        self._pool_size = pool_size
        self._cluster = isinstance(client, RedisCluster | PipelinedCluster)
        self._in_flight = 0  # our commands awaiting Redis, counted here (see stats)
        # A cluster client fails a command at once when its node's pool is empty
        # (MaxConnectionsError) where the standalone BlockingConnectionPool waits: hold
        # commands beyond the cap back here, so a burst waits (within the caller's timeout).
        self._command_slots: asyncio.Semaphore | contextlib.nullcontext[None] = (
            asyncio.Semaphore(pool_size)
            if self._cluster and pool_size
            else contextlib.nullcontext()
        )

    @classmethod
    def from_settings(cls, settings: RedisSettings) -> RedisStore:
        """Pipelined connections of our own (`connection: pipelined`, the default): one to a
        standalone Redis, one per master of a cluster; or redis-py's pools (`connection:
        pool`: `pool_size` connections, per node on a cluster)."""
        if settings.connection == "pipelined":
            # Pipelined connections have no pool to report.
            return cls(pipelined_client(settings), settings.key_prefix)
        return cls(create_client(settings), settings.key_prefix, settings.pool_size)

    def stats(self) -> dict[str, float]:
        """Counted in our code, not read from redis-py's private pool fields. Each command in
        flight holds one pooled connection or waits for one: with a standalone client that
        owns its pool, connections in use are min(in flight, pool size). A cluster client
        has one pool per node: only the commands in flight are reported."""
        figures = {"redis_commands_in_flight": float(self._in_flight)}
        if self._pool_size and not self._cluster:
            figures["redis_pool_in_use"] = float(min(self._in_flight, self._pool_size))
            figures["redis_pool_max"] = float(self._pool_size)
        return figures

    async def apply(self, hits: Sequence[Hit], now: float) -> list[Verdict]:
        if not hits:
            return []
        try:
            if isinstance(self._client, RedisCluster | PipelinedCluster):
                return await self._apply_cluster(self._client, hits, now)
            keys, args = _arguments(hits, now, self._prefix)
            return _verdicts(await self._run(self._client, keys, args))
        except (RedisError, OSError) as error:
            raise StoreUnavailable(f"redis: {error}") from error

    async def reset(self, hits: Sequence[Hit], now: float) -> None:
        keys = [self._prefix + key for hit in hits for key in key_layout(hit, now).keys]
        if not keys:
            return
        self._in_flight += 1
        try:
            async with self._command_slots:
                # Both cluster clients split a multi-key DEL by slot themselves.
                await self._client.delete(*keys)
        except (RedisError, OSError) as error:
            raise StoreUnavailable(f"redis: {error}") from error
        finally:
            self._in_flight -= 1

    async def close(self) -> None:
        await self._client.aclose()

    async def _apply_cluster(
        self, client: ClusterClient, hits: Sequence[Hit], now: float
    ) -> list[Verdict]:
        # redis-py fails when concurrent first commands race its lazy cluster discovery:
        # discover first (a no-op once done), then fan out. PipelinedCluster: reads the slot
        # map when missing or stale.
        await client.initialize()
        by_slot: dict[int, list[int]] = defaultdict(list)
        for index, hit in enumerate(hits):
            by_slot[client.keyslot(self._prefix + hit.key)].append(index)
        groups = list(by_slot.values())
        answers = await asyncio.gather(
            *(
                self._run(client, *_arguments([hits[i] for i in g], now, self._prefix))
                for g in groups
            )
        )
        results: list[Verdict | None] = [None] * len(hits)
        for group, raw in zip(groups, answers, strict=True):
            for index, verdict in zip(group, _verdicts(raw), strict=True):
                results[index] = verdict
        return [v for v in results if v is not None]

    async def _run(self, client: StoreClient, keys: list[str], args: list[str]) -> Any:
        self._in_flight += 1
        try:
            async with self._command_slots:
                try:
                    return await client.evalsha(_SHA, len(keys), *keys, *args)
                except NoScriptError:
                    # First call on this server (or after a restart): EVAL also caches it.
                    return await client.eval(SCRIPT, len(keys), *keys, *args)
        finally:
            self._in_flight -= 1
