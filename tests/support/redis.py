"""Real redis-server processes for tests: a standalone server and a small local cluster.

Use the fixtures by importing them into a conftest.py:

    from tests.support.redis import redis_cluster, redis_server, redis_server_factory  # noqa: F401
"""

from __future__ import annotations

import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.support import find_binary, free_port, wait_for_port


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@dataclass
class RedisServer:
    """One redis-server on loopback; `kill()` and `start()` again simulate an outage."""

    binary: str
    directory: Path
    port: int = field(default_factory=free_port)
    extra_args: tuple[str, ...] = ()
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.directory),
                *self.extra_args,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.port)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)  # a paused server cannot die cleanly
            self.process.kill()
            self.process.wait(timeout=10)
        self.process = None

    def pause(self) -> None:
        """SIGSTOP: the server accepts connections but answers nothing (a hung Redis)."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

    def cli(self, *args: str) -> str:
        redis_cli = find_binary("redis-cli")
        done = subprocess.run(
            [redis_cli, "-p", str(self.port), *args],
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        )
        return done.stdout

    def command_calls(self) -> dict[str, int]:
        """`INFO commandstats` as {command: calls}."""
        calls: dict[str, int] = {}
        for line in self.cli("INFO", "commandstats").splitlines():
            if line.startswith("cmdstat_"):
                name, _, stats = line.partition(":")
                fields = dict(item.split("=") for item in stats.split(","))
                calls[name.removeprefix("cmdstat_")] = int(fields["calls"])
        return calls


@dataclass
class LocalRedisCluster:
    nodes: list[RedisServer]

    @property
    def url(self) -> str:
        return self.nodes[0].url

    def stop(self) -> None:
        for node in self.nodes:
            node.kill()


def _cluster_port() -> int:
    # The cluster bus listens on port + 10000: both must be free.
    for _ in range(100):
        port = free_port()
        if port + 10000 < 65536 and _port_is_free(port + 10000):
            return port
    raise RuntimeError("no free port pair for a cluster node")


def start_cluster(directory: Path, masters: int = 3) -> LocalRedisCluster:
    binary = find_binary("redis-server")
    redis_cli = find_binary("redis-cli")
    nodes = []
    for index in range(masters):
        node_dir = directory / f"node{index}"
        node = RedisServer(
            binary,
            node_dir,
            port=_cluster_port(),
            extra_args=(
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                str(node_dir / "nodes.conf"),
                "--cluster-node-timeout",
                "2000",
            ),
        )
        node.start()
        nodes.append(node)
    cluster = LocalRedisCluster(nodes)
    try:
        subprocess.run(
            [
                redis_cli,
                "--cluster",
                "create",
                *(f"127.0.0.1:{n.port}" for n in nodes),
                "--cluster-replicas",
                "0",
                "--cluster-yes",
            ],
            capture_output=True,
            check=True,
            timeout=60,
        )
        deadline = time.monotonic() + 30
        while not all("cluster_state:ok" in n.cli("CLUSTER", "INFO") for n in nodes):
            if time.monotonic() > deadline:
                raise TimeoutError("redis cluster did not reach cluster_state:ok")
            time.sleep(0.1)
    except BaseException:
        cluster.stop()
        raise
    return cluster


def redis_store(url: str) -> dict[str, Any]:
    """A `rate_limit:` store on `url`, under a key prefix of its own (tests share servers)."""
    prefix = f"t{uuid.uuid4().hex[:8]}:"
    return {"store": "redis", "redis": {"url": url, "key_prefix": prefix, "timeout_ms": 500}}


RedisServerFactory = Callable[[], RedisServer]


@pytest.fixture
def redis_server_factory(tmp_path: Path) -> Iterator[RedisServerFactory]:
    """Start fresh servers (e.g. one per test that kills its server)."""
    binary = find_binary("redis-server")
    started: list[RedisServer] = []

    def start() -> RedisServer:
        server = RedisServer(binary, tmp_path / f"redis{len(started)}")
        server.start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.kill()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One server for the session; tests keep apart through distinct key prefixes."""
    server = RedisServer(find_binary("redis-server"), tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.kill()


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRedisCluster]:
    find_binary("redis-cli")
    cluster = start_cluster(tmp_path_factory.mktemp("redis-cluster"))
    yield cluster
    cluster.stop()
