"""The floor: Check and ShouldRateLimit answering a constant OK on the same grpc.aio stack.

Same server options, health and reflection services as authz_service's server, so that the
difference in a side-by-side run is our per-request logic and nothing else.

    python -m benchmarks.null_server --listen 127.0.0.1:9101
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from typing import Any

import grpc
from envoy.service.auth.v3 import external_auth_pb2, external_auth_pb2_grpc
from envoy.service.ratelimit.v3 import rls_pb2, rls_pb2_grpc
from google.rpc import code_pb2, status_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer
from grpc_reflection.v1alpha import reflection

from authz_service.grpc.server_options import SERVER_OPTIONS
from authz_service.process import event_loop_factory

OK_CHECK = external_auth_pb2.CheckResponse(
    status=status_pb2.Status(code=code_pb2.OK), ok_response=external_auth_pb2.OkHttpResponse()
)
OK_RATE_LIMIT = rls_pb2.RateLimitResponse(overall_code=rls_pb2.RateLimitResponse.OK)


class NullAuthorization(external_auth_pb2_grpc.AuthorizationServicer):  # type: ignore[misc]
    async def Check(self, request: Any, context: Any) -> Any:
        return OK_CHECK


class NullRateLimit(rls_pb2_grpc.RateLimitServiceServicer):  # type: ignore[misc]
    async def ShouldRateLimit(self, request: Any, context: Any) -> Any:
        return OK_RATE_LIMIT


async def serve(listen: str) -> None:
    server = grpc.aio.server(options=list(SERVER_OPTIONS))
    external_auth_pb2_grpc.add_AuthorizationServicer_to_server(NullAuthorization(), server)
    rls_pb2_grpc.add_RateLimitServiceServicer_to_server(NullRateLimit(), server)
    health = HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    reflection.enable_server_reflection(
        (
            external_auth_pb2.DESCRIPTOR.services_by_name["Authorization"].full_name,
            rls_pb2.DESCRIPTOR.services_by_name["RateLimitService"].full_name,
            health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
            reflection.SERVICE_NAME,
        ),
        server,
    )
    if server.add_insecure_port(listen) == 0:
        raise OSError(f"cannot listen on {listen}")
    await server.start()
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    try:
        await stopping.wait()
    finally:
        await server.stop(1.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--listen", default="127.0.0.1:9101")
    # The service's default loop (uvloop when installed): the floor runs on what it runs on.
    loop_factory = event_loop_factory("auto")
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.run(serve(parser.parse_args().listen))


if __name__ == "__main__":
    main()
