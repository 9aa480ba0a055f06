"""One pipelined Redis connection: concurrent commands share a write, replies match in order.

redis-py's asyncio client costs ~80 us of CPU per command here (pool checkout, command
packing, stream reads); this connection costs a fraction of it (benchmarks/redis_clients.py
has the figures). Every command is packed by hiredis and queued; the queue goes out in one
write per event-loop iteration, and hiredis' reader parses the replies, each completing the
oldest waiting command (Redis answers in order on one connection).

Failure rules, so the store chain's fail-open / fail-closed policy decides quickly:
- connection lost: every waiting command fails at once with `ConnectionError`; the next
  command reconnects (connect attempts back off after failures, up to `MAX_BACKOFF_S`, and
  commands during the wait fail at once instead of piling up);
- no reply within `timeout_s` (a hung Redis): the connection is dropped, failing everything
  waiting on it; a caller that gave up earlier (cancelled) just leaves its reply unread.
Errors are redis-py's exception classes, so `RedisStore` handles both clients alike.
On a Redis Cluster, redis_cluster_pipeline.py keeps one of these per master.
"""

from __future__ import annotations

import asyncio
import collections
import ssl
import time
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import parse_qs, unquote, urlsplit

import hiredis
from redis import exceptions as redis_errors

MIN_BACKOFF_S = 0.05
MAX_BACKOFF_S = 1.0


def _pack(command: tuple[str | bytes | int | float, ...]) -> bytes:
    # hiredis' stub types the argument as a 1-tuple; it takes a tuple of any length.
    return cast(bytes, hiredis.pack_command(command))  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class RedisAddress:
    """Where and how to connect, from a redis://, rediss:// or unix:// URL."""

    host: str = "127.0.0.1"
    port: int = 6379
    unix_path: str | None = None
    db: int = 0
    username: str | None = None
    password: str | None = None
    tls: bool = False

    @classmethod
    def from_url(cls, url: str, username: str | None, password: str | None) -> RedisAddress:
        parts = urlsplit(url)
        query = parse_qs(parts.query)
        if parts.scheme == "unix":
            db = int(query.get("db", ["0"])[0])
            return cls(unix_path=unquote(parts.path), db=db, username=username, password=password)
        path = parts.path.strip("/")
        return cls(
            host=parts.hostname or "127.0.0.1",
            port=parts.port or 6379,
            db=int(path) if path else int(query.get("db", ["0"])[0]),
            # Settings win over credentials written in the URL.
            username=username or (unquote(parts.username) if parts.username else None),
            password=password or (unquote(parts.password) if parts.password else None),
            tls=parts.scheme == "rediss",
        )


class _Connection(asyncio.Protocol):
    """One socket: sends queued commands, hands each reply to the oldest waiting command."""

    def __init__(self, timeout_s: float) -> None:
        self._loop = asyncio.get_running_loop()
        self._timeout = timeout_s
        self._reader = hiredis.Reader(replyError=redis_errors.ResponseError)
        self._waiting: collections.deque[tuple[asyncio.Future[Any], float]] = collections.deque()
        self._outbox: list[bytes] = []
        self._transport: asyncio.Transport | None = None
        self._watchdog: asyncio.TimerHandle | None = None
        self.closed = False
        self.lost: asyncio.Future[None] = self._loop.create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A cast, not an isinstance check: uvloop's TCP and unix transports (the default
        # loop) implement the Transport interface without subclassing asyncio.Transport.
        self._transport = cast(asyncio.Transport, transport)

    def send(self, packed: bytes) -> asyncio.Future[Any]:
        if self.closed:
            raise redis_errors.ConnectionError("redis connection closed")
        future: asyncio.Future[Any] = self._loop.create_future()
        if not self._outbox:
            self._loop.call_soon(self._flush)  # once per iteration: one write for them all
        self._outbox.append(packed)
        self._waiting.append((future, time.monotonic()))
        if self._watchdog is None:
            self._watchdog = self._loop.call_later(self._timeout, self._check_oldest)
        return future

    def _flush(self) -> None:
        if self._transport is not None and not self.closed and self._outbox:
            self._transport.write(b"".join(self._outbox))
        self._outbox.clear()

    def data_received(self, data: bytes) -> None:
        self._reader.feed(data)
        try:
            self._complete_replies()
        except hiredis.ProtocolError as error:  # not RESP: nothing after it can be trusted
            self.abort(redis_errors.ConnectionError(f"redis protocol error: {error}"))

    def _complete_replies(self) -> None:
        waiting = self._waiting
        while (reply := self._reader.gets()) is not False:
            if not waiting:  # a reply nobody asked for: the stream is out of step
                self.abort(redis_errors.ConnectionError("redis sent an unexpected reply"))
                return
            future, _ = waiting.popleft()
            if future.done():  # its caller gave up (timed out or cancelled)
                continue
            if isinstance(reply, redis_errors.ResponseError):
                message = str(reply)
                error = (
                    redis_errors.NoScriptError(message) if message.startswith("NOSCRIPT") else reply
                )
                future.set_exception(error)
            else:
                future.set_result(reply)

    def _check_oldest(self) -> None:
        self._watchdog = None
        if not self._waiting or self.closed:
            return
        age = time.monotonic() - self._waiting[0][1]
        if age >= self._timeout:
            self.abort(
                redis_errors.TimeoutError(
                    f"no reply from redis within {self._timeout * 1000:.0f} ms"
                )
            )
        else:
            self._watchdog = self._loop.call_later(self._timeout - age, self._check_oldest)

    def abort(self, error: Exception) -> None:
        """Fail every waiting command with `error` and drop the socket."""
        if self._transport is not None:
            self._transport.abort()
        self._fail_all(error)

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail_all(
            redis_errors.ConnectionError(f"redis connection lost: {exc or 'closed by server'}")
        )

    def _fail_all(self, error: Exception) -> None:
        self.closed = True
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        self._outbox.clear()
        while self._waiting:
            future, _ = self._waiting.popleft()
            if not future.done():
                future.set_exception(error)
        if not self.lost.done():
            self.lost.set_result(None)


class PipelinedRedis:
    """The subset of redis-py's client that `RedisStore` uses, over one pipelined connection."""

    def __init__(
        self,
        address: RedisAddress,
        timeout_s: float,
        connect_timeout_s: float,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._address = address
        self._timeout = timeout_s
        self._connect_timeout = connect_timeout_s
        self._ssl = ssl_context
        self._connection: _Connection | None = None
        self._connecting: asyncio.Task[_Connection] | None = None
        self._failures = 0
        self._retry_at = 0.0

    @property
    def encrypted(self) -> bool:
        return self._ssl is not None

    async def execute(self, *args: str | bytes | int | float) -> Any:
        connection = self._connection
        if connection is None or connection.closed:
            connection = await self._connected()
        return await connection.send(_pack(args))

    async def execute_asking(self, *args: str | bytes | int | float) -> Any:
        """ASKING, then the command, back to back on this connection (a Redis Cluster's ASK
        redirection: ASKING lets only the very next command into a migrating slot)."""
        connection = self._connection
        if connection is None or connection.closed:
            connection = await self._connected()
        asking = connection.send(_pack(("ASKING",)))
        reply = connection.send(_pack(args))
        _, answer = await asyncio.gather(asking, reply)
        return answer

    async def evalsha(self, sha: str, numkeys: int, *keys_and_args: str) -> Any:
        return await self.execute("EVALSHA", sha, numkeys, *keys_and_args)

    async def eval(self, script: str, numkeys: int, *keys_and_args: str) -> Any:
        return await self.execute("EVAL", script, numkeys, *keys_and_args)

    async def delete(self, *keys: str) -> Any:
        return await self.execute("DEL", *keys)

    async def aclose(self) -> None:
        if self._connecting is not None:
            self._connecting.cancel()
        connection, self._connection = self._connection, None
        if connection is not None and not connection.closed:
            connection.abort(redis_errors.ConnectionError("redis client closed"))
            await connection.lost

    async def _connected(self) -> _Connection:
        """The live connection, opening one first (single-flight: callers share the attempt;
        one that gives up leaves it running for the others)."""
        connecting = self._connecting
        if connecting is None or connecting.done():
            if time.monotonic() < self._retry_at:
                wait_ms = (self._retry_at - time.monotonic()) * 1000
                raise redis_errors.ConnectionError(
                    f"redis unreachable; next attempt in {wait_ms:.0f} ms"
                )
            connecting = asyncio.get_running_loop().create_task(self._connect())
            connecting.add_done_callback(retrieve_outcome)
            self._connecting = connecting
        return await asyncio.shield(connecting)

    async def _connect(self) -> _Connection:
        loop = asyncio.get_running_loop()
        address = self._address
        try:
            async with asyncio.timeout(self._connect_timeout):
                if address.unix_path is not None:
                    _, connection = await loop.create_unix_connection(
                        lambda: _Connection(self._timeout), address.unix_path
                    )
                else:
                    _, connection = await loop.create_connection(
                        lambda: _Connection(self._timeout),
                        address.host,
                        address.port,
                        ssl=self._ssl,
                    )
                await self._handshake(connection)
        except (OSError, TimeoutError, redis_errors.RedisError) as error:
            self._failures += 1
            backoff = min(MAX_BACKOFF_S, MIN_BACKOFF_S * 2 ** (self._failures - 1))
            self._retry_at = time.monotonic() + backoff
            why = str(error) or type(error).__name__  # a timeout has no message
            raise redis_errors.ConnectionError(f"cannot connect to redis: {why}") from error
        self._failures = 0
        self._connection = connection
        return connection

    async def _handshake(self, connection: _Connection) -> None:
        address = self._address
        commands: list[tuple[str | int, ...]] = []
        if address.password is not None:
            credentials = (address.username, address.password) if address.username else ()
            commands.append(("AUTH", *(credentials or (address.password,))))
        if address.db:
            commands.append(("SELECT", address.db))
        replies = [connection.send(_pack(c)) for c in commands]
        try:
            await asyncio.gather(*replies)
        except BaseException:
            connection.abort(redis_errors.ConnectionError("redis handshake failed"))
            raise


def retrieve_outcome(task: asyncio.Task[Any]) -> None:
    """Mark a shared task's outcome as seen: when every caller gave up before it ended, its
    exception would otherwise be logged as never retrieved."""
    if not task.cancelled():
        task.exception()


def tls_context(
    ca_file: str | None, cert_file: str | None, key_file: str | None, verify: bool
) -> ssl.SSLContext:
    """A client context: the CA (or the system's), our certificate if given, verification on
    unless `verify` is off."""
    context = ssl.create_default_context(cafile=ca_file)
    if cert_file is not None:
        context.load_cert_chain(cert_file, key_file)
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context
