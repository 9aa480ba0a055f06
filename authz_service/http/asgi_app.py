"""The HTTP check transport as an ASGI app, served by granian (`http_check.server: granian`).

One function builds the app from a list of routes: `build_asgi_app([Route(prefix, handler)])`.
A route's handler gets the framework-neutral `Subrequest` and returns an `HttpReply`; the
first route whose prefix the path is at or under answers. To add an endpoint (an AuthZEN
evaluation, say), put its `Route` before the catch-all check route, with
`max_body_bytes` > 0 if it needs the body (a longer body is answered 413 unread). A check
never reads the body: it is decided on the head, like on the aiohttp endpoint.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from authz_service.http.check_endpoint import Subrequest
from authz_service.http.check_translate import HttpReply

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
AsgiApp = Callable[[Scope, Receive, Send], Awaitable[None]]
RouteHandler = Callable[[Subrequest], Awaitable[HttpReply]]

_NOT_FOUND = HttpReply(404, {"content-type": "text/plain"}, "no route here\n")
_TOO_LARGE = HttpReply(413, {"content-type": "text/plain"}, "request body too large\n")


@dataclass(frozen=True, slots=True)
class Route:
    """Requests whose path is `prefix` or under it ("/" takes every path)."""

    prefix: str
    handler: RouteHandler
    max_body_bytes: int = 0  # 0: the body is not read

    def matches(self, path: str) -> bool:
        prefix = self.prefix.rstrip("/")
        return not prefix or path == prefix or path.startswith(prefix + "/")


def subrequest_from_scope(scope: Scope) -> Subrequest:
    """The ASGI scope as the check transport reads it: the target as sent (raw_path + query,
    not decoded), headers as latin-1 text like aiohttp gives them, the socket peer."""
    raw_path: bytes | None = scope.get("raw_path")
    path = raw_path.decode("latin-1") if raw_path else str(scope.get("path", "/"))
    query: bytes = scope.get("query_string") or b""
    if query and "?" not in path:
        path = f"{path}?{query.decode('latin-1')}"
    headers = tuple(
        (name.decode("latin-1"), value.decode("latin-1")) for name, value in scope["headers"]
    )
    client = scope.get("client")
    return Subrequest(str(scope["method"]), path, headers, str(client[0]) if client else "")


def build_asgi_app(routes: Sequence[Route]) -> AsgiApp:
    """The ASGI app answering HTTP requests with the first matching route."""
    ordered = tuple(routes)

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":  # nothing to set up: the server wires everything
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        if scope["type"] != "http":
            return
        subrequest = subrequest_from_scope(scope)
        path = subrequest.raw_path.split("?", 1)[0]
        route = next((route for route in ordered if route.matches(path)), None)
        if route is None:
            reply = _NOT_FOUND
        elif route.max_body_bytes:
            body = await read_body(receive, route.max_body_bytes)
            reply = (
                _TOO_LARGE if body is None else await route.handler(replace(subrequest, body=body))
            )
        else:
            reply = await route.handler(subrequest)
        await send_reply(send, reply)

    return app


async def read_body(receive: Receive, limit: int) -> bytes | None:
    """The request body, or None past `limit` bytes (the rest is left unread)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":  # the client went away
            return None
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def send_reply(send: Send, reply: HttpReply) -> None:
    headers = reply.encoded_headers
    await send({"type": "http.response.start", "status": reply.status, "headers": headers})
    await send({"type": "http.response.body", "body": reply.encoded_body})
