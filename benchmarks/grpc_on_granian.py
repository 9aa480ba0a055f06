"""Can granian serve gRPC (ext_authz Check)? An experiment, not a transport.

    python -m benchmarks.grpc_on_granian

gRPC needs HTTP/2 trailers: an answer with a message ends with `grpc-status` in a trailing
HEADERS frame. ASGI has an extension for that (`http.response.trailers`, announced with
`"trailers": True` in `http.response.start`); RSGI has no trailers at all. This starts
granian (HTTP/2 only, one worker) with an ASGI app that answers every request with an OK
CheckResponse in each way a server could try, and calls Check with grpcio's client:

- `trailers`: the ASGI trailers extension (`http.response.trailers` after the body);
- `headers`: `grpc-status: 0` in the response headers, then the message (no trailers);
- `trailers-only`: `grpc-status: 0` in the headers and no body (valid gRPC for an error,
  carrying no message: not an answer to Check).

Prints what the client saw for each; benchmarks/README.md has the result.
"""

from __future__ import annotations

import multiprocessing
import os
import socket
import sys
from typing import Any

import grpc
from envoy.service.auth.v3 import external_auth_pb2, external_auth_pb2_grpc

from tools.processes import free_port, wait_for_port

_OK = external_auth_pb2.CheckResponse().SerializeToString()
_MODE_VARIABLE = "AUTHZ_GRANIAN_GRPC_MODE"
_FRAME = b"\x00" + len(_OK).to_bytes(4, "big") + _OK


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    mode = os.environ.get(_MODE_VARIABLE, "trailers")
    while (await receive()).get("more_body"):
        pass
    headers = [(b"content-type", b"application/grpc")]
    if mode == "trailers":
        await send(
            {"type": "http.response.start", "status": 200, "headers": headers, "trailers": True}
        )
        await send({"type": "http.response.body", "body": _FRAME})
        await send({"type": "http.response.trailers", "headers": [(b"grpc-status", b"0")]})
    elif mode == "headers":
        headers.append((b"grpc-status", b"0"))
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": _FRAME})
    else:  # trailers-only
        headers.append((b"grpc-status", b"0"))
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b""})


def _serve(mode: str, port: int) -> None:
    os.environ[_MODE_VARIABLE] = mode  # granian's worker process inherits it
    from granian.constants import HTTPModes, Interfaces
    from granian.server import Server

    Server(
        "benchmarks.grpc_on_granian:app",
        address="127.0.0.1",
        port=port,
        interface=Interfaces.ASGI,
        http=HTTPModes.http2,
        workers=1,
        websockets=False,
        log_enabled=False,
    ).serve()


def _try(mode: str) -> str:
    port = free_port()
    server = multiprocessing.get_context("spawn").Process(target=_serve, args=(mode, port))
    server.start()
    try:
        wait_for_port(port)
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = external_auth_pb2_grpc.AuthorizationStub(channel)
            try:
                response = stub.Check(external_auth_pb2.CheckRequest(), timeout=5)
            except grpc.RpcError as error:
                return f"{error.code().name}: {error.details()}"  # type: ignore[attr-defined]
            return f"OK: {response!r}"
    finally:
        server.terminate()
        server.join(10)


def main() -> int:
    socket.setdefaulttimeout(10)
    for mode in ("trailers", "headers", "trailers-only"):
        print(f"{mode}: {_try(mode)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
