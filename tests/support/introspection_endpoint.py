"""A real RFC 7662 introspection endpoint on a loopback port, for integration and end-to-end
tests: an aiohttp app served from its own thread and event loop, so that sync tests (through
Envoy) and async tests (the verifier in the test's loop) can both use it.

It authenticates its client (client_secret_basic or client_secret_post), answers from the
tokens a test registered, counts calls per token (single-flight and caching are pinned by
counts, not by timing), and can be made to misbehave: `mode` "ok", "5xx", "garbage" (not
JSON), "no_active" (JSON without `active`), "huge" (past the client's size cap); `hold()`
makes every answer wait (a hanging endpoint) until `release()` or `stop()`, so that
concurrent callers overlap for sure.
"""

from __future__ import annotations

import asyncio
import base64
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import unquote_plus

from aiohttp import web

CLIENT_ID = "authz-gateway"
CLIENT_SECRET = "s3cret: with spaces & symbols"
ISSUER = "https://opaque-issuer.test"


class IntrospectionEndpoint:
    def __init__(self) -> None:
        self.tokens: dict[str, dict[str, Any]] = {}
        self.mode = "ok"
        self.calls: Counter[str] = Counter()
        self.hints: list[str | None] = []
        self.auth_methods: list[str] = []
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._gate: asyncio.Event | None = None
        self._runner: web.AppRunner | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self.port = 0

    # -- what tests set up and read --------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/token/introspection"

    def issue(self, token: str, **claims: Any) -> None:
        """Register `token` as active with these claims (sub, scope, exp, ...)."""
        answer: dict[str, Any] = {
            "active": True,
            "iss": ISSUER,
            "exp": int(time.time()) + 600,
            "token_type": "Bearer",
        }
        answer.update(claims)
        self.tokens[token] = answer

    def revoke(self, token: str) -> None:
        self.tokens[token] = {"active": False}

    def calls_for(self, token: str) -> int:
        with self._lock:
            return self.calls[token]

    def total_calls(self) -> int:
        with self._lock:
            return sum(self.calls.values())

    def hold(self) -> None:
        """Answers wait (the endpoint hangs) until `release()`."""
        self._gate = asyncio.Event()

    def release(self) -> None:
        gate, self._gate = self._gate, None
        if gate is not None:
            self._loop.call_soon_threadsafe(gate.set)

    # -- serving ---------------------------------------------------------------------------

    def _client_authenticated(self, request: web.Request, form: dict[str, str]) -> bool:
        header = request.headers.get("authorization", "")
        if header.startswith("Basic "):
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
            self.auth_methods.append("client_secret_basic")
            return unquote_plus(user) == CLIENT_ID and unquote_plus(password) == CLIENT_SECRET
        self.auth_methods.append("client_secret_post")
        return form.get("client_id") == CLIENT_ID and form.get("client_secret") == CLIENT_SECRET

    async def _introspect(self, request: web.Request) -> web.StreamResponse:
        form = {key: str(value) for key, value in (await request.post()).items()}
        token = form.get("token", "")
        with self._lock:
            self.calls[token] += 1
            self.hints.append(form.get("token_type_hint"))
        if not self._client_authenticated(request, form):
            return web.json_response({"error": "invalid_client"}, status=401)
        gate = self._gate
        if gate is not None:
            await gate.wait()
        if self.mode == "5xx":
            return web.Response(status=503, text="upstream connect error")
        if self.mode == "garbage":
            return web.Response(text="<html>not json</html>", content_type="text/html")
        if self.mode == "huge":
            return web.json_response({"active": True, "sub": "alice", "pad": "x" * 200_000})
        if self.mode == "no_active":
            return web.json_response({"sub": "alice"})
        return web.json_response(self.tokens.get(token, {"active": False}))

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_post("/token/introspection", self._introspect)
        self._runner = web.AppRunner(app, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def _stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def start(self) -> IntrospectionEndpoint:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=10)
        return self

    def stop(self) -> None:
        self.release()
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()


@contextmanager
def running_endpoint() -> Iterator[IntrospectionEndpoint]:
    endpoint = IntrospectionEndpoint().start()
    try:
        yield endpoint
    finally:
        endpoint.stop()


def wait_for(condition: Callable[[], bool], within_s: float = 5.0) -> None:
    """Poll `condition` from a sync test until it holds; fail after `within_s`."""
    deadline = time.monotonic() + within_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.01)
