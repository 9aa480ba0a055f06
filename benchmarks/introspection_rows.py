"""Rows of benchmarks/credentials.py for opaque tokens (RFC 7662 introspection): a request's
whole authentication (Authenticator.authenticate_token) with the introspection answer cached,
and uncached (one HTTP call per request to a loopback introspection endpoint), beside a bearer
JWT found in the token cache.

The endpoint (tests/support/introspection_endpoint.py) runs in a child process, so that this
process's CPU time is what the service spends; the endpoint's own CPU is reported apart.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from multiprocessing.connection import Connection

from authz_service.authn.authenticator import Authenticator, PresentedToken
from authz_service.authn.introspection import IntrospectionVerifier
from authz_service.decisions import AuthMethod, Identity
from authz_service.schema import Config, IntrospectionProvider, TokenSource
from benchmarks.procstat import cpu_seconds
from tests.support.introspection_endpoint import (
    CLIENT_ID,
    CLIENT_SECRET,
    ISSUER,
    IntrospectionEndpoint,
)

TOKEN = "bench-opaque-token-0123456789abcdef"
SECRET_ENV = "AUTHZ_BENCH_INTROSPECTION_SECRET"
SOURCE = TokenSource(header="authorization", prefix="Bearer ")

Row = tuple[str, Callable[[int], None], int]


def _serve(pipe: Connection) -> None:
    endpoint = IntrospectionEndpoint().start()
    endpoint.issue(TOKEN, sub="alice", scope="orders:read")
    pipe.send(endpoint.port)
    pipe.recv()  # until the parent is done
    endpoint.stop()


@contextmanager
def endpoint_process() -> Iterator[tuple[str, int]]:
    """(introspection URL, pid) of an endpoint served by a child process."""
    parent, child = multiprocessing.Pipe()
    process = multiprocessing.get_context("fork").Process(target=_serve, args=(child,))
    process.start()
    try:
        port = parent.recv()
        assert process.pid is not None
        yield f"http://127.0.0.1:{port}/token/introspection", process.pid
    finally:
        parent.send("stop")
        process.join(timeout=10)


def _authenticator(url: str, cached: bool) -> Authenticator:
    os.environ[SECRET_ENV] = CLIENT_SECRET
    provider = IntrospectionProvider(
        name="bench",
        issuer=ISSUER,
        introspection_endpoint=url,
        client_id=CLIENT_ID,
        client_secret_env=SECRET_ENV,
        cache={"active_max_s": 300 if cached else 0},  # type: ignore[arg-type]
    )
    config = Config.model_validate(
        {
            "introspection_providers": [provider.model_dump(mode="json")],
            "policies": {"default": {"rules": [{"name": "open", "allow": "anonymous"}]}},
        }
    )
    return Authenticator(config, {}, introspection={"bench": IntrospectionVerifier(provider)})


def _authenticate_loop(authenticator: Authenticator, token: str) -> Callable[[int], None]:
    presented = PresentedToken(token, SOURCE)

    def work(n: int) -> None:
        async def run() -> None:
            for _ in range(n):
                result = await authenticator.authenticate_token(presented)
                assert isinstance(result, Identity), result
            # Each batch runs in a loop of its own: its connections end with it.
            for verifier in authenticator.introspection:
                await verifier.client.close()

        asyncio.run(run())

    return work


class EndpointCpu:
    """The endpoint process's CPU microseconds per call of the last batch run through it."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.us_per_call = 0.0

    def around(self, work: Callable[[int], None]) -> Callable[[int], None]:
        def measured(n: int) -> None:
            before = cpu_seconds([self.pid])
            work(n)
            self.us_per_call = (cpu_seconds([self.pid]) - before) / n * 1e6

        return measured


def introspection_rows(url: str, calls: int, bearer: str, endpoint: EndpointCpu) -> list[Row]:
    cached = _authenticator(url, cached=True)
    uncached = _authenticator(url, cached=False)
    # A JWT's token-cache hit through the same authenticate_token path (the provider check
    # on a hit is answered yes: no JWT provider is configured here).
    jwt_cached = _authenticator(url, cached=True)
    jwt_cached.token_cache.put(bearer, Identity("alice", AuthMethod.JWT, issuer="bench"))
    jwt_cached._accepts_from = lambda issuer, source: True  # type: ignore[method-assign]
    return [
        (
            "bearer JWT, token-cache hit (authenticate)",
            _authenticate_loop(jwt_cached, bearer),
            calls * 20,
        ),
        (
            "opaque token, cached answer (authenticate)",
            _authenticate_loop(cached, TOKEN),
            calls * 20,
        ),
        (
            "opaque token, introspected (authenticate)",
            endpoint.around(_authenticate_loop(uncached, TOKEN)),
            calls,
        ),
    ]
