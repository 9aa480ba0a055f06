"""A Redis Cluster over pipelined connections: one `PipelinedRedis` per master, by slot.

The slot map comes from CLUSTER SLOTS, asked of any node we know (the configured one first
time). A command goes to the master of its first key's slot (RedisStore keeps every key of
one script call in one slot, by hash tag). When the cluster answers otherwise:
- `MOVED <slot> <host:port>`: the slot has a new owner. Record it, send the command there,
  and read the whole map again before the next command (a resharding moves many slots);
- `ASK <slot> <host:port>`: the slot is migrating and this key is at the target already:
  send ASKING and the command to the target back to back on its connection (nothing can come
  between them: both are queued at once), and leave the map alone;
- a connection error: the command fails (the store chain's fail-open / fail-closed rule
  applies); the map is read again before the next command, since a failover may have
  promoted a replica.
At most `MAX_REDIRECTIONS` per command. Errors are redis-py's exception classes, as for
`PipelinedRedis`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import ssl
from collections import defaultdict
from typing import Any

from redis import exceptions as redis_errors
from redis.crc import key_slot

from authz_service.ratelimit.redis_pipeline import PipelinedRedis, RedisAddress, retrieve_outcome

MAX_REDIRECTIONS = 5
SLOTS = 16384

Node = tuple[str, int]


def _redirection(error: redis_errors.ResponseError) -> tuple[str, int, Node] | None:
    """('MOVED' | 'ASK', slot, node) from a redirection error, None for any other error."""
    parts = str(error).split()
    if len(parts) != 3 or parts[0] not in ("MOVED", "ASK"):
        return None
    host, _, port = parts[2].rpartition(":")
    return parts[0], int(parts[1]), (host, int(port))


class PipelinedCluster:
    """The subset of redis-py's cluster client that `RedisStore` uses."""

    def __init__(
        self,
        seed: RedisAddress,
        timeout_s: float,
        connect_timeout_s: float,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._seed = seed
        self._timeout = timeout_s
        self._connect_timeout = connect_timeout_s
        self._ssl = ssl_context
        self._nodes: dict[Node, PipelinedRedis] = {}
        self._slots: list[Node | None] = [None] * SLOTS
        self._stale = True
        self._refreshing: asyncio.Task[None] | None = None

    @staticmethod
    def keyslot(key: str) -> int:
        return int(key_slot(key.encode()))

    async def initialize(self) -> None:
        """Read the slot map if it is missing or stale (single-flight)."""
        if not self._stale:
            return
        refreshing = self._refreshing
        if refreshing is None or refreshing.done():
            refreshing = asyncio.get_running_loop().create_task(self._read_slot_map())
            refreshing.add_done_callback(retrieve_outcome)
            self._refreshing = refreshing
        await asyncio.shield(refreshing)

    async def evalsha(self, sha: str, numkeys: int, *keys_and_args: str) -> Any:
        return await self._keyed(keys_and_args[0], "EVALSHA", sha, numkeys, *keys_and_args)

    async def eval(self, script: str, numkeys: int, *keys_and_args: str) -> Any:
        return await self._keyed(keys_and_args[0], "EVAL", script, numkeys, *keys_and_args)

    async def delete(self, *keys: str) -> int:
        """DEL, one command per slot (a multi-key command must stay within one slot)."""
        by_slot: dict[int, list[str]] = defaultdict(list)
        for key in keys:
            by_slot[self.keyslot(key)].append(key)
        counts = await asyncio.gather(*(self._keyed(g[0], "DEL", *g) for g in by_slot.values()))
        return sum(int(count) for count in counts)

    async def aclose(self) -> None:
        if self._refreshing is not None:
            self._refreshing.cancel()
        nodes, self._nodes = list(self._nodes.values()), {}
        await asyncio.gather(*(node.aclose() for node in nodes))

    async def _keyed(self, key: str, *command: str | int) -> Any:
        await self.initialize()
        slot = self.keyslot(key)
        target = self._slots[slot]
        if target is None:
            self._stale = True
            raise redis_errors.ClusterDownError(f"no master serves slot {slot}")
        asking = False
        for _ in range(MAX_REDIRECTIONS + 1):
            node = self._node(target)
            try:
                if asking:
                    return await node.execute_asking(*command)
                return await node.execute(*command)
            except redis_errors.ResponseError as error:
                redirection = _redirection(error)
                if redirection is None:
                    raise
                kind, moved_slot, target = redirection
                asking = kind == "ASK"
                if not asking:
                    self._slots[moved_slot] = target
                    self._stale = True
            except redis_errors.ConnectionError:
                self._stale = True
                raise
        raise redis_errors.ClusterError(f"more than {MAX_REDIRECTIONS} redirections for {key!r}")

    def _node(self, node: Node) -> PipelinedRedis:
        client = self._nodes.get(node)
        if client is None:
            address = dataclasses.replace(self._seed, host=node[0], port=node[1], db=0)
            client = PipelinedRedis(address, self._timeout, self._connect_timeout, self._ssl)
            self._nodes[node] = client
        return client

    async def _read_slot_map(self) -> None:
        seed = (self._seed.host, self._seed.port)
        candidates = [*self._nodes, *([seed] if seed not in self._nodes else [])]
        failures: list[str] = []
        for candidate in candidates:
            try:
                reply = await self._node(candidate).execute("CLUSTER", "SLOTS")
            except redis_errors.RedisError as error:
                failures.append(f"{candidate[0]}:{candidate[1]}: {error}")
                continue
            slots: list[Node | None] = [None] * SLOTS
            for start, end, master, *_replicas in reply:
                # An empty host means "the address you asked me on".
                host = master[0].decode() or candidate[0]
                slots[int(start) : int(end) + 1] = [(host, int(master[1]))] * (end - start + 1)
            self._slots = slots
            self._stale = False
            return
        raise redis_errors.ConnectionError(f"no cluster node answered: {'; '.join(failures)}")
