"""Run as a separate OS process: fire many concurrent hits at one limit, print how many passed.

python -m tests.integration.ratelimit.hammer URL PREFIX ALGORITHM LIMIT REQUESTS NOW

Prints `ready` once connected, then fires only when a line `go` arrives on stdin: the test
sends it when every process is ready, so that they race (a barrier they all reach, not a
timed wait). Then prints how many of its hits were admitted.
"""

from __future__ import annotations

import asyncio
import sys

from authz_service.ratelimit.redis_store import RedisStore
from authz_service.ratelimit.store import Hit
from authz_service.schema import RedisSettings


async def main(argv: list[str]) -> int:
    url, prefix, algorithm, limit, requests, now = argv
    settings = RedisSettings(
        url=url, key_prefix=prefix, timeout_ms=5000, connect_timeout_ms=5000, pool_size=32
    )
    store = RedisStore.from_settings(settings)
    hit = Hit("{shared}|x", algorithm, int(limit), 3600.0, 1)  # type: ignore[arg-type]
    await store.apply([Hit("{warm}|x", "fixed_window", 1, 1.0, 0)], float(now))
    print("ready", flush=True)
    signal = await asyncio.to_thread(sys.stdin.readline)
    if signal != "go\n":
        raise SystemExit(f"expected 'go' on stdin, got {signal!r}")
    results = await asyncio.gather(*(store.apply([hit], float(now)) for _ in range(int(requests))))
    await store.close()
    return sum(verdicts[0].allowed for verdicts in results)


if __name__ == "__main__":
    print(asyncio.run(main(sys.argv[1:])))
