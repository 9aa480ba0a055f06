"""The development identity provider (tools.dev_idp) serving its JWKS on a loopback port."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from tools.dev_idp import DevIdentityProvider


class FakeClock:
    """A monotonic clock that only moves when a test says so."""

    def __init__(self, now: float = 1_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@contextmanager
def running_idp(**kwargs: object) -> Iterator[DevIdentityProvider]:
    idp = DevIdentityProvider(**kwargs)  # type: ignore[arg-type]
    idp.start(host="127.0.0.1")
    try:
        yield idp
    finally:
        # Let any handler still sleeping (delay_s) answer at once, then stop serving.
        idp.delay_s = 0.0
        idp.stop()


async def wait_until(condition: Callable[[], object], within_s: float = 3.0) -> None:
    """Poll `condition` (cheaply) until it holds; fail the test after `within_s`."""
    async with asyncio.timeout(within_s):
        while not condition():  # noqa: ASYNC110 (polling an outside process)
            await asyncio.sleep(0.02)
