"""Our own per-call work, without any server: CPU µs per warm check through each transport's
seam (the HTTP check endpoint's ASGI app with a no-op `send`, the gRPC Check servicer) with
the benchmark's service config (50 rules, 1,000 tokens, audit and metrics on), in this
process; the lowest of three alternating rounds per transport.

    python -m benchmarks.hotpath [--calls 20000] [--profile http|grpc] [--cold]

What a server adds on top (granian's or grpc.aio's per-call machinery, the loop's wake-ups)
is scenario 1's null rows; this is the rest, measured without the noise of a load generator
sharing the 2 cores. `--profile http|grpc` prints cProfile's top functions for that transport.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from authz_service.grpc.authorization_servicer import AuthorizationServicer, _parse
from authz_service.http.asgi_app import Route, build_asgi_app
from authz_service.http.check_endpoint import HttpCheckHandler, Subrequest
from authz_service.process import tune_garbage_collector
from authz_service.server import AuthzServer
from benchmarks import fixtures, messages
from tools.dev_idp import DevIdentityProvider
from tools.processes import free_port


class _Context:
    """What the servicer asks of a grpc.aio context on a warm call: no trace context."""

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return ()


def _scope(token: str, index: int) -> dict[str, Any]:
    """The ASGI scope granian hands over for the benchmark request."""
    subrequest = _subrequest(token, index)
    return {
        "type": "http",
        "method": subrequest.method,
        "path": subrequest.raw_path,
        "raw_path": subrequest.raw_path.encode(),
        "query_string": b"",
        "headers": [(k.encode(), v.encode()) for k, v in subrequest.raw_headers],
        "client": ("127.0.0.1", 50000),
    }


async def _receive() -> dict[str, Any]:
    return {"type": "http.request", "body": b"", "more_body": False}


async def _send(message: Any) -> None:
    return None


def _subrequest(token: str, index: int) -> Subrequest:
    """What loadgen/tokens.lua sends: the client's address as a trusted gateway forwards it."""
    headers = (
        ("host", messages.REQUEST_HOST),
        ("authorization", f"Bearer {token}"),
        ("user-agent", "bench-client/1.0"),
        ("accept", "application/json"),
        ("accept-encoding", "gzip, br"),
        ("x-forwarded-proto", "https"),
        ("x-forwarded-for", f"10.0.{index // 250}.{index % 250 + 1}"),
        ("x-request-id", f"00000000-0000-4000-8000-{index:012d}"),
    )
    return Subrequest("GET", "/envoy" + messages.REQUEST_PATH, headers, "127.0.0.1")


async def _measure(
    calls: int, profile: str | None, workdir: Path, cold: bool = False
) -> dict[str, float]:
    idp = DevIdentityProvider()
    idp.start()
    try:
        pool = fixtures.TokenPool.mint(idp)
        config = fixtures.service_config(
            workdir / "authz.yaml",
            port=free_port(),
            jwks_uri=idp.jwks_uri,
            # Cold: the token cache holds half the pool, walked in order: every check misses.
            token_cache_max_entries=len(pool.tokens) // 2 if cold else 10_000,
            extra={
                **fixtures.http_check_section(free_port()),
                "telemetry": {"audit": {"output": str(workdir / "audit.log")}},
            },
        )
        server = AuthzServer(config)
        settings = server.compiled_config.loaded.config.http_check
        assert settings is not None
        http = HttpCheckHandler(settings, server.checks, server.telemetry)
        grpc_check = AuthorizationServicer(server.checks, server.telemetry).Check
        subrequests = [_subrequest(token, i) for i, token in enumerate(pool.tokens)]
        app = build_asgi_app([Route("/", http.reply)])
        scopes = [_scope(token, i) for i, token in enumerate(pool.tokens)]
        bodies = [_parse(body) for body in fixtures.check_bodies(pool)]
        context = _Context()
        for subrequest in subrequests:  # every token verified once: the warm case
            reply = await http.reply(subrequest)
            assert reply.status == 200, reply
        tune_garbage_collector()  # as `serve` does once started
        figures: dict[str, float] = {}

        async def http_calls() -> None:
            for index in range(calls):
                await app(scopes[index % len(scopes)], _receive, _send)

        async def grpc_calls() -> None:
            for index in range(calls):
                await grpc_check(bodies[index % len(bodies)], context)

        for name, run in (("http", http_calls), ("grpc", grpc_calls)) * 3:
            started = time.process_time()
            if name == profile:
                profiler = cProfile.Profile()
                profiler.enable()
                await run()
                profiler.disable()
                pstats.Stats(profiler).sort_stats("tottime").print_stats(30)
            else:
                await run()
            micros = (time.process_time() - started) / calls * 1e6
            figures[name] = min(micros, figures.get(name, micros))
        server.telemetry.close()
        return figures
    finally:
        idp.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--profile", choices=["http", "grpc"], help="cProfile one transport")
    parser.add_argument("--cold", action="store_true", help="every token seen for the first time")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="authz-hotpath-") as tmp:
        figures: dict[str, Any] = asyncio.run(
            _measure(args.calls, args.profile, Path(tmp), args.cold)
        )
    for name, micros in figures.items():
        kind = "cold" if args.cold else "warm"
        print(f"{name}: {micros:.1f} µs CPU per {kind} check (our work, no server)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
