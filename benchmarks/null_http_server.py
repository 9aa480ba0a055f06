"""The floor of the HTTP transport: every subrequest answered 200, on granian's ASGI server
with one worker, like `http_check.server: granian` (which runs the same server embedded).

    python -m benchmarks.null_http_server --listen 127.0.0.1:9103
"""

from __future__ import annotations

import argparse
from typing import Any

from granian.constants import Interfaces
from granian.server import Server


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """ASGI: 200 with an empty body for every HTTP request."""
    if scope["type"] != "http":
        return
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"0")]}
    )
    await send({"type": "http.response.body", "body": b""})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--listen", default="127.0.0.1:9103")
    args = parser.parse_args()
    host, _, port = args.listen.rpartition(":")
    Server(
        "benchmarks.null_http_server:app",
        address=host,
        port=int(port),
        interface=Interfaces.ASGINL,
        workers=1,
        websockets=False,
        log_enabled=False,
    ).serve()


if __name__ == "__main__":
    main()
