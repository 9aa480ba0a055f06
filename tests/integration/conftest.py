from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.support.authz_server import Start, server_starter


@pytest.fixture
async def start(tmp_path: Path) -> AsyncIterator[Start]:
    """Starts in-process AuthzServers on configs; all stopped after the test."""
    async with server_starter(tmp_path) as start_server:
        yield start_server
