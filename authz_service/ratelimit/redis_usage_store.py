"""UsageStore on Redis: one hash per bucket, one field per Envoy, shared by every replica.

    {prefix}rlqs|{domain|k=v...}|<limit tag>     (the braces: one Redis Cluster slot per bucket)
      <envoy>        "expires_at|demand|allowed|denied|peer"
      <envoy>#share  the share last assigned to it

A report is one pipelined round trip: for each bucket, a script writes the Envoy's field,
deletes the fields of Envoys whose entry expired, renews the key's expiry and returns what is
left; on a standalone Redis one script call handles up to BATCH buckets (a report of 1,000
per-user buckets is four calls), on a cluster each bucket is its own call (its own slot).
Time comes from the caller, as for the quota store: replicas' clocks should agree to well
within the assignment TTL.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from typing import Any

from redis.asyncio.cluster import RedisCluster
from redis.exceptions import NoScriptError, RedisClusterException, RedisError

from authz_service.ratelimit.redis_store import Client, create_client
from authz_service.ratelimit.store import StoreUnavailable
from authz_service.ratelimit.usage_store import (
    NO_SHARE,
    EntryRef,
    EnvoyUsage,
    ShareUpdate,
    UsageReport,
)
from authz_service.schema import RedisSettings

_SHARE_SUFFIX = "#share"

# KEYS: the buckets. ARGV: now, then per bucket: key ttl (ms), envoy, packed usage.
# Returns each bucket's fields (HGETALL), in KEYS order.
RECORD_SCRIPT = r"""
local now = tonumber(ARGV[1])
local out = {}
for k = 1, #KEYS do
  local key, base = KEYS[k], 1 + (k - 1) * 3
  redis.call('HSET', key, ARGV[base + 2], ARGV[base + 3])
  local fields = redis.call('HGETALL', key)
  for i = 1, #fields, 2 do
    local name = fields[i]
    if not string.find(name, '#', 1, true) then
      local expires = tonumber(string.match(fields[i + 1], '^[^|]+'))
      if expires == nil or expires <= now then
        redis.call('HDEL', key, name, name .. '#share')
      end
    end
  end
  redis.call('PEXPIRE', key, ARGV[base + 1])
  out[k] = redis.call('HGETALL', key)
end
return out
"""
BATCH = 256  # buckets per script call on a standalone Redis (bounds one call's run time)
_SHA = hashlib.sha1(RECORD_SCRIPT.encode()).hexdigest()

# KEYS[1]: the bucket. ARGV: the time to end by, then the Envoys whose entries end by then.
EXPIRE_SCRIPT = r"""
local at = tonumber(ARGV[1])
for i = 2, #ARGV do
  local value = redis.call('HGET', KEYS[1], ARGV[i])
  if value then
    local expires, rest = string.match(value, '^([^|]+)(|.*)$')
    if expires and tonumber(expires) > at then
      redis.call('HSET', KEYS[1], ARGV[i], ARGV[1] .. rest)
    end
  end
end
return 0
"""


def pack(usage: EnvoyUsage) -> str:
    return f"{usage.expires_at!r}|{usage.demand!r}|{usage.allowed}|{usage.denied}|{usage.peer}"


def unpack(fields: dict[str, str], now: float) -> list[EnvoyUsage]:
    """The live entries of a bucket's hash (HGETALL as a dict)."""
    entries = []
    for name, value in fields.items():
        if name.endswith(_SHARE_SUFFIX):
            continue
        try:
            expires, demand, allowed, denied, peer = value.split("|", 4)
            usage = EnvoyUsage(
                envoy=name,
                peer=peer,
                demand=float(demand),
                allowed=int(allowed),
                denied=int(denied),
                expires_at=float(expires),
                share=float(fields.get(name + _SHARE_SUFFIX, NO_SHARE)),
            )
        except ValueError:
            continue  # not ours (or from an incompatible version): ignored, expires anyway
        if usage.expires_at > now:
            entries.append(usage)
    return entries


def _as_dict(raw: Any) -> dict[str, str]:
    if isinstance(raw, dict):
        return {_text(k): _text(v) for k, v in raw.items()}
    items = [_text(item) for item in raw]
    return dict(zip(items[0::2], items[1::2], strict=True))


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class RedisUsageStore:
    def __init__(self, client: Client, key_prefix: str = "", concurrency: int = 8) -> None:
        self._client = client
        self._prefix = key_prefix
        # Cluster calls in flight at once: a report of 1,000 buckets must not ask for 1,000
        # connections (the pool refuses beyond its size).
        self._calls = asyncio.Semaphore(concurrency)

    @classmethod
    def from_settings(cls, settings: RedisSettings) -> RedisUsageStore:
        concurrency = max(1, settings.pool_size // 2)
        return cls(create_client(settings), settings.key_prefix, concurrency)

    async def _bounded(self, call: Callable[[], Awaitable[Any]]) -> Any:
        """`call()` once a slot is free (made then: a call never started is never made)."""
        async with self._calls:
            return await call()

    def key(self, bucket: str) -> str:
        return f"{self._prefix}rlqs|{bucket}"

    async def record(self, reports: Sequence[UsageReport], now: float) -> list[list[EnvoyUsage]]:
        if not reports:
            return []
        # The key outlives its longest-lived entry by a second of slack.
        args = [
            (self.key(r.bucket), int((r.usage.expires_at - now) * 1000) + 1000, r.usage)
            for r in reports
        ]
        try:
            try:
                raw = await self._run(args, now)
            except NoScriptError:
                # First report on this server (or after its restart): load, then again.
                await self._client.script_load(RECORD_SCRIPT)
                raw = await self._run(args, now)
        except (RedisError, RedisClusterException, OSError) as error:
            raise StoreUnavailable(f"redis: {error}") from error
        return [unpack(_as_dict(fields), now) for fields in raw]

    async def _run(self, args: Sequence[tuple[str, int, EnvoyUsage]], now: float) -> list[Any]:
        calls = []
        size = 1 if isinstance(self._client, RedisCluster) else BATCH
        for start in range(0, len(args), size):
            chunk = args[start : start + size]
            values = [repr(float(now))]
            for _, ttl_ms, usage in chunk:
                values += [str(max(ttl_ms, 1000)), usage.envoy, pack(usage)]
            calls.append(([key for key, _, _ in chunk], len(chunk), values))
        if isinstance(self._client, RedisCluster):
            # Scripts are not pipelined on a cluster: one call per bucket (slot), concurrent.
            await self._client.initialize()
            results: list[Any] = list(
                await asyncio.gather(
                    *(
                        self._bounded(partial(self._client.evalsha, _SHA, n, *keys, *values))
                        for keys, n, values in calls
                    )
                )
            )
        else:
            pipe = self._client.pipeline(transaction=False)
            for keys, n, values in calls:
                pipe.evalsha(_SHA, n, *keys, *values)
            results = await pipe.execute(raise_on_error=False)
            for result in results:
                if isinstance(result, Exception):
                    raise result
        return [fields for chunk in results for fields in chunk]

    async def assign(self, shares: Sequence[ShareUpdate]) -> None:
        if not shares:
            return
        try:
            pipe = self._client.pipeline(transaction=False)
            for update in shares:
                pipe.hset(self.key(update.bucket), update.envoy + _SHARE_SUFFIX, repr(update.share))
            await pipe.execute()
        except (RedisError, RedisClusterException, OSError) as error:
            raise StoreUnavailable(f"redis: {error}") from error

    async def read(self, bucket: str, now: float) -> list[EnvoyUsage]:
        try:
            raw = await self._client.hgetall(self.key(bucket))
        except (RedisError, RedisClusterException, OSError) as error:
            raise StoreUnavailable(f"redis: {error}") from error
        return unpack(_as_dict(raw), now)

    async def expire(self, entries: Sequence[EntryRef], at: float) -> None:
        by_bucket: dict[str, list[str]] = {}
        for ref in entries:
            by_bucket.setdefault(ref.bucket, []).append(ref.envoy)
        if not by_bucket:
            return
        try:
            await asyncio.gather(
                *(
                    self._bounded(
                        partial(
                            self._client.eval,
                            EXPIRE_SCRIPT,
                            1,
                            self.key(bucket),
                            repr(float(at)),
                            *envoys,
                        )
                    )
                    for bucket, envoys in by_bucket.items()
                )
            )
        except (RedisError, RedisClusterException, OSError) as error:
            raise StoreUnavailable(f"redis: {error}") from error

    async def close(self) -> None:
        await self._client.aclose()
