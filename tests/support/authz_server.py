"""The service in this test's process, on free loopback ports, stopped when the block ends."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from authz_service.server import AuthzServer


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
