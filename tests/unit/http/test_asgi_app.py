"""The ASGI app of the HTTP transport: routing by prefix, what a handler is given, bodies."""

from __future__ import annotations

from typing import Any

from authz_service.http.asgi_app import Route, build_asgi_app
from authz_service.http.check_endpoint import Subrequest
from authz_service.http.check_translate import HttpReply


def scope(path: bytes, query: bytes = b"", **extra: Any) -> dict[str, Any]:
    return {
        "type": "http",
        "method": "POST",
        "path": path.decode(),
        "raw_path": path,
        "query_string": query,
        "headers": [(b"Host", b"api.example.com"), (b"x-request-id", b"r1")],
        "client": ("203.0.113.7", 50000),
        **extra,
    }


class Recorder:
    def __init__(self) -> None:
        self.seen: list[Subrequest] = []

    async def __call__(self, subrequest: Subrequest) -> HttpReply:
        self.seen.append(subrequest)
        return HttpReply(200, {"x-route": "recorded"}, "ok")


async def call(app: Any, request: dict[str, Any], bodies: list[bytes]) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []
    pending = [
        {"type": "http.request", "body": body, "more_body": index < len(bodies) - 1}
        for index, body in enumerate(bodies)
    ]

    async def receive() -> dict[str, Any]:
        return pending.pop(0) if pending else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(request, receive, send)
    return sent


async def test_the_first_route_at_or_under_its_prefix_answers() -> None:
    first, catch_all = Recorder(), Recorder()
    app = build_asgi_app([Route("/access/v1", first), Route("/", catch_all)])
    await call(app, scope(b"/access/v1/evaluation"), [b""])
    await call(app, scope(b"/access/v10"), [b""])
    assert [s.raw_path for s in first.seen] == ["/access/v1/evaluation"]
    assert [s.raw_path for s in catch_all.seen] == ["/access/v10"]


async def test_the_handler_gets_the_target_as_sent_headers_and_peer() -> None:
    recorder = Recorder()
    app = build_asgi_app([Route("/", recorder)])
    sent = await call(app, scope(b"/envoy/a%2Fb", b"x=1"), [b"ignored"])
    (subrequest,) = recorder.seen
    assert subrequest.raw_path == "/envoy/a%2Fb?x=1"
    assert subrequest.header("host") == "api.example.com"
    assert subrequest.remote == "203.0.113.7"
    assert subrequest.body == b""  # a check never reads the body
    assert sent[0]["status"] == 200
    assert (b"x-route", b"recorded") in sent[0]["headers"]
    assert (b"content-length", b"2") in sent[0]["headers"]
    assert sent[1]["body"] == b"ok"


async def test_a_route_asking_for_the_body_gets_it_whole() -> None:
    recorder = Recorder()
    app = build_asgi_app([Route("/", recorder, max_body_bytes=16)])
    await call(app, scope(b"/e"), [b'{"a":', b"1}"])
    assert recorder.seen[0].body == b'{"a":1}'


async def test_a_body_over_the_route_limit_is_413_and_not_handled() -> None:
    recorder = Recorder()
    app = build_asgi_app([Route("/", recorder, max_body_bytes=4)])
    sent = await call(app, scope(b"/e"), [b"12345"])
    assert sent[0]["status"] == 413
    assert recorder.seen == []


async def test_a_path_no_route_takes_is_404() -> None:
    app = build_asgi_app([Route("/only", Recorder())])
    sent = await call(app, scope(b"/other"), [b""])
    assert sent[0]["status"] == 404
