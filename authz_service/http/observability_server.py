"""The observability HTTP port: Prometheus /metrics, /healthz (alive) and /readyz (serving).

/readyz turns 503 as soon as a graceful shutdown begins, before in-flight RPCs drain, so load
balancers and Kubernetes stop sending traffic first.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from authz_service.http.guarded_listener import GuardedListener
from authz_service.schema import ConnectionLimits, split_listen
from authz_service.schema.secret_digest import bearer_matches
from authz_service.telemetry.connection_metrics import ConnectionStats
from authz_service.telemetry.metrics import Metrics


class ObservabilityServer:
    def __init__(
        self,
        metrics: Metrics,
        ready: Callable[[], tuple[bool, dict[str, object]]],
        token_hash: str | None = None,
        limits: ConnectionLimits | None = None,
    ) -> None:
        self._metrics = metrics
        self._ready = ready
        # Replaced by a reload (AuthzServer applies telemetry.metrics.token_hash live).
        self.token_hash = token_hash
        self._runner: web.AppRunner | None = None
        self._limits = limits or ConnectionLimits(max_connections=32)
        self.stats = ConnectionStats("metrics")
        self._listener = GuardedListener(self._limits, self.stats)
        self.port = 0

    def _app(self) -> web.Application:
        app = web.Application(middlewares=[self._listener.middleware])
        app.router.add_get("/metrics", self._metrics_page)
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        return app

    async def _metrics_page(self, request: web.Request) -> web.Response:
        expected = self.token_hash
        if expected is not None and not bearer_matches(
            request.headers.get("authorization", ""), expected
        ):
            return web.Response(status=401, text="metrics token required\n")
        body = generate_latest(self._metrics.registry)
        return web.Response(body=body, headers={"content-type": CONTENT_TYPE_LATEST})

    async def _healthz(self, _request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def _readyz(self, _request: web.Request) -> web.Response:
        ready, details = self._ready()
        return web.Response(
            status=200 if ready else 503,
            text=json.dumps({"ready": ready, **details}),
            content_type="application/json",
        )

    async def start(self, listen: str) -> None:
        host, port = split_listen(listen)
        self._runner = web.AppRunner(
            self._app(), access_log=None, keepalive_timeout=self._limits.idle_timeout_s
        )
        await self._runner.setup()
        self.port = await self._listener.start(self._runner, host.strip("[]"), port)

    async def stop(self) -> None:
        await self._listener.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
