"""RedisStore on its default connection (one pipelined connection, redis_pipeline.py) against a
real redis-server: concurrent calls share the connection, a lost or hung connection fails every
waiting call at once, the next call reconnects, a flushed script is loaded again, and
passwords and database numbers reach Redis."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
import uvloop

from authz_service.ratelimit.redis_store import RedisStore
from authz_service.ratelimit.store import Hit, StoreUnavailable
from authz_service.schema import RedisSettings
from tests.support import find_binary
from tests.support.redis import RedisServer, RedisServerFactory

pytestmark = pytest.mark.redis

TAKE = Hit("{p}|user=alice", "fixed_window", 1000, 60.0, 1)


def pipelined_store(url: str, timeout_ms: int = 2000, **settings: object) -> RedisStore:
    return RedisStore.from_settings(
        RedisSettings.model_validate(
            {"url": url, "timeout_ms": timeout_ms, "connect_timeout_ms": 2000, **settings}
        )
    )


def client_count(cli_output: str) -> int:
    """Connections open on the server, besides redis-cli's own."""
    return len([line for line in cli_output.splitlines() if "cmd=client" not in line])


async def test_concurrent_calls_share_one_connection_and_count_exactly(
    redis_server_factory: RedisServerFactory,
) -> None:
    server = redis_server_factory()
    store = pipelined_store(server.url)
    answers = await asyncio.gather(*(store.apply([TAKE], 1.0) for _ in range(50)))
    clients = client_count(server.cli("CLIENT", "LIST"))
    await store.close()

    assert sorted(verdicts[0].remaining for verdicts in answers) == list(range(950, 1000))
    assert clients == 1


async def test_a_connection_lost_mid_flight_fails_every_waiting_call_then_reconnects(
    redis_server_factory: RedisServerFactory,
) -> None:
    server = redis_server_factory()
    store = pipelined_store(server.url, timeout_ms=30_000)  # only the lost connection may end them
    await store.apply([TAKE], 1.0)
    server.pause()  # the calls below wait on the connection...
    waiting = [asyncio.create_task(store.apply([TAKE], 1.0)) for _ in range(5)]
    async with asyncio.timeout(5):
        while store.stats()["redis_commands_in_flight"] < 5:  # noqa: ASYNC110
            await asyncio.sleep(0)  # yield until the tasks sent them: no timed wait
    started = time.monotonic()
    server.kill()  # ...and the connection drops under them
    outcomes = await asyncio.gather(*waiting, return_exceptions=True)
    failed_within = time.monotonic() - started
    server.start()  # same port, empty
    deadline = time.monotonic() + 5
    while True:  # reconnects by itself (connect attempts back off after failures)
        try:
            recovered = await store.apply([TAKE], 1.0)
            break
        except StoreUnavailable:
            assert time.monotonic() < deadline, "did not reconnect"
            await asyncio.sleep(0.05)
    await store.close()

    assert all(isinstance(outcome, StoreUnavailable) for outcome in outcomes), outcomes
    assert failed_within < 1.0
    assert recovered[0].remaining == 999  # counting again on the fresh server


async def test_a_hung_redis_fails_the_waiting_calls_within_the_timeout(
    redis_server_factory: RedisServerFactory,
) -> None:
    server = redis_server_factory()
    store = pipelined_store(server.url, timeout_ms=200)
    await store.apply([TAKE], 1.0)
    server.pause()
    started = time.monotonic()
    try:
        outcomes = await asyncio.gather(
            *(store.apply([TAKE], 1.0) for _ in range(3)), return_exceptions=True
        )
        failed_within = time.monotonic() - started
    finally:
        server.resume()
    after = await store.apply([TAKE], 1.0)  # a new connection to the resumed server
    await store.close()

    assert all(isinstance(outcome, StoreUnavailable) for outcome in outcomes), outcomes
    assert "200 ms" in str(outcomes[0])
    assert failed_within < 1.0
    # The paused server did run the three commands once resumed: they were sent.
    assert after[0].remaining == 1000 - 5


async def test_a_flushed_script_is_loaded_again(redis_server_factory: RedisServerFactory) -> None:
    server = redis_server_factory()
    store = pipelined_store(server.url)
    await store.apply([TAKE], 1.0)
    server.cli("SCRIPT", "FLUSH")  # as after a restart or a failover to a replica
    verdicts = await store.apply([TAKE], 1.0)
    calls = server.command_calls()
    await store.close()

    assert verdicts[0].remaining == 998
    assert calls["eval"] == 2  # the first call, and the one after the flush


async def test_password_and_database_from_settings_reach_redis(
    redis_server_factory: RedisServerFactory,
) -> None:
    server = redis_server_factory()
    server.cli("CONFIG", "SET", "requirepass", "s3cret")
    url = f"redis://127.0.0.1:{server.port}/3"
    store = pipelined_store(url, password="s3cret", key_prefix="db3:")
    await store.apply([TAKE], 1.0)
    keys_in_db3 = server.cli("-a", "s3cret", "-n", "3", "--no-auth-warning", "KEYS", "db3:*")
    wrong = pipelined_store(url, password="wrong")
    with pytest.raises(StoreUnavailable, match=r"WRONGPASS|invalid"):
        await wrong.apply([TAKE], 1.0)
    await store.close()
    await wrong.close()

    assert keys_in_db3.split()  # the counter is in database 3


async def test_a_unix_socket_url_reaches_redis(tmp_path: Path) -> None:
    socket = tmp_path / "redis.sock"
    server = RedisServer(
        find_binary("redis-server"), tmp_path / "unix", extra_args=("--unixsocket", str(socket))
    )
    server.start()
    try:
        store = pipelined_store(f"unix://{socket}?db=1")
        verdicts = await store.apply([TAKE], 1.0)
        await store.close()
        in_db1 = server.cli("-n", "1", "DBSIZE").strip()
    finally:
        server.kill()

    assert verdicts[0].remaining == 999
    assert in_db1 == "1"


async def test_a_server_that_does_not_speak_resp_fails_the_call_with_the_store_error() -> None:
    # Something else on the configured port (a misconfigured URL): not a Redis.
    handled = asyncio.Event()

    async def answer_garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1024)
        writer.write(b"HTTP/1.1 400 Bad Request\r\n\r\n")
        await writer.drain()
        await reader.read()  # until the client drops the connection
        writer.close()
        await writer.wait_closed()
        handled.set()

    server = await asyncio.start_server(answer_garbage, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    store = pipelined_store(f"redis://127.0.0.1:{port}/0")
    try:
        with pytest.raises(StoreUnavailable, match="protocol error"):
            await store.apply([TAKE], 1.0)
    finally:
        await store.close()
        async with asyncio.timeout(5):
            await handled.wait()  # the server side saw the connection dropped
        server.close()
        await server.wait_closed()


@pytest.mark.parametrize("over", ["tcp", "unix"])
def test_the_pipelined_connection_counts_on_uvloop_the_services_default_loop(
    redis_server_factory: RedisServerFactory,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    over: str,
) -> None:
    """uvloop's transports do not subclass asyncio.Transport: the connection must not care."""
    if over == "tcp":
        url = redis_server_factory().url
    else:
        socket = tmp_path / "redis.sock"
        server = RedisServer(
            find_binary("redis-server"), tmp_path / "unix", extra_args=("--unixsocket", str(socket))
        )
        server.start()
        request.addfinalizer(server.kill)
        url = f"unix://{socket}"

    async def three_takes() -> list[int]:
        store = pipelined_store(url)
        try:
            answers = await asyncio.gather(*(store.apply([TAKE], 1.0) for _ in range(3)))
        finally:
            await store.close()
        return sorted(verdicts[0].remaining for verdicts in answers)

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        assert runner.get_loop().__class__.__module__.startswith("uvloop")
        assert runner.run(three_takes()) == [997, 998, 999]
