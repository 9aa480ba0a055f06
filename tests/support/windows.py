"""Fixed windows restart on the clock's boundaries (every minute for a per-minute limit): a
test that counts up to a limit and expects the next call refused must not straddle one."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

# Longer than any counting sequence in the tests takes, even on a loaded CI machine.
NEEDED_S = 6.0


def clear_of_window_edge(needed_s: float = NEEDED_S, window_s: float = 60.0) -> None:
    """Return at once if the current window has `needed_s` left; else wait for the next."""
    left = window_s - time.time() % window_s
    if left < needed_s:
        time.sleep(left + 0.05)


@pytest.fixture
def fresh_minute() -> Iterator[None]:
    """For `pytestmark = pytest.mark.usefixtures("fresh_minute")` in modules that count."""
    clear_of_window_edge()
    yield
