"""The service in this test's process, on free loopback ports, stopped when the block ends."""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

from authz_service.server import AuthzServer
from tests.support.authz_config import write_config

# Starts a server on a config (a dict, as the YAML file would hold it); returns it started.
Start = Callable[[dict[str, Any]], Awaitable[AuthzServer]]


@contextlib.asynccontextmanager
async def running_server(
    config_path: Path, listen: str | None = "127.0.0.1:0"
) -> AsyncIterator[AuthzServer]:
    """`listen` overrides server.listen (None: the config's own)."""
    server = AuthzServer(config_path, listen)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@contextlib.asynccontextmanager
async def server_starter(config_dir: Path) -> AsyncIterator[Start]:
    """A `Start` for as many servers as a test wants, each config written to its own file in
    `config_dir`; every server started is stopped when the block ends."""
    numbers = itertools.count()
    async with contextlib.AsyncExitStack() as started:

        async def start_server(config: dict[str, Any]) -> AuthzServer:
            path = write_config(config_dir / f"authz{next(numbers)}.yaml", config)
            return await started.enter_async_context(running_server(path))

        yield start_server
