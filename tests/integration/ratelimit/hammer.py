"""Run as a separate OS process: fire many concurrent hits at one limit, print how many passed.

python -m tests.integration.ratelimit.hammer \\
    URL PREFIX ALGORITHM LIMIT REQUESTS NOW BARRIER_DIR PROCESSES
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path

from authz_service.ratelimit.redis_store import RedisStore
from authz_service.ratelimit.store import Hit
from authz_service.schema import RedisSettings


async def main(argv: list[str]) -> int:
    url, prefix, algorithm, limit, requests, now, barrier, processes = argv
    settings = RedisSettings(
        url=url, key_prefix=prefix, timeout_ms=5000, connect_timeout_ms=5000, pool_size=32
    )
    store = RedisStore.from_settings(settings)
    hit = Hit("{shared}|x", algorithm, int(limit), 3600.0, 1)  # type: ignore[arg-type]
    await store.apply([Hit("{warm}|x", "fixed_window", 1, 1.0, 0)], float(now))
    # Fire only when every process is connected, so they really race.
    barrier_dir = Path(barrier)
    (barrier_dir / f"ready-{os.getpid()}").touch()
    deadline = time.monotonic() + 30
    while len(os.listdir(barrier_dir)) < int(processes) and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.005)  # a file barrier between processes: no Event can span them
    results = await asyncio.gather(*(store.apply([hit], float(now)) for _ in range(int(requests))))
    await store.close()
    return sum(verdicts[0].allowed for verdicts in results)


if __name__ == "__main__":
    print(asyncio.run(main(sys.argv[1:])))
