"""Process wiring: the gRPC server, health, reflection, reload, signals, graceful shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
from collections.abc import Sequence
from pathlib import Path

import grpc
from envoy.service.auth.v3 import external_auth_pb2
from envoy.service.ratelimit.v3 import rls_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer
from grpc_reflection.v1alpha import reflection

from authz_service.admin.v1 import admin_pb2_grpc
from authz_service.authn.jwks_registry import JwksRegistry
from authz_service.config.model import AdminSettings, ServerSettings
from authz_service.config.reload import ConfigReloader
from authz_service.connection_limits import grpc_options
from authz_service.descriptors import OpenPorts, ensure_descriptors
from authz_service.grpc.admin_servicer import ADMIN_SERVICE, AdminServicer, AdminTokenInterceptor
from authz_service.grpc.authorization_servicer import (
    AuthorizationServicer,
    add_authorization_servicer,
)
from authz_service.grpc.ratelimit_servicer import add_ratelimit_servicer
from authz_service.grpc.tls import ClientSanInterceptor, ReloadingCertificates, server_credentials
from authz_service.http.check_endpoint import HttpCheckServer
from authz_service.http.guarded_listener import ConnectionStats
from authz_service.ratelimit import RateLimiter
from authz_service.ratelimit.store_stats import store_stats
from authz_service.revocation import build_revocation_store
from authz_service.runtime import QuotaStoreHolder, Runtime, build_runtime
from authz_service.services.check import CheckService
from authz_service.services.quota_admin import QuotaAdmin
from authz_service.telemetry import tracing
from authz_service.telemetry.connection_metrics import ConnectionCollector
from authz_service.telemetry.http_server import ObservabilityServer
from authz_service.telemetry.metrics import Metrics, ServiceStateCollector
from authz_service.telemetry.observer import Telemetry

log = logging.getLogger(__name__)

AUTHORIZATION_SERVICE = external_auth_pb2.DESCRIPTOR.services_by_name["Authorization"].full_name
RATELIMIT_SERVICE = rls_pb2.DESCRIPTOR.services_by_name["RateLimitService"].full_name
HEALTH_SERVICE = health_pb2.DESCRIPTOR.services_by_name["Health"].full_name
SERVED = (AUTHORIZATION_SERVICE, RATELIMIT_SERVICE)

# Keep-alive settings that let Envoy's long-lived HTTP/2 connections stay up.
SERVER_OPTIONS: Sequence[tuple[str, int]] = (
    ("grpc.keepalive_time_ms", 60_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
    ("grpc.max_receive_message_length", 4 * 1024 * 1024),
    # A port already in use is an error, not a silent share with another process.
    ("grpc.so_reuseport", 0),
)


def server_options(settings: ServerSettings) -> list[tuple[str, int]]:
    """SERVER_OPTIONS with the configured receive limit and connection limits."""
    options = dict(SERVER_OPTIONS)
    options["grpc.max_receive_message_length"] = settings.max_receive_message_bytes
    options.update(grpc_options(settings.connections))
    return list(options.items())


class AuthzServer:
    """One serving process. `start()` then `wait()`; `stop()` drains gracefully.

    Serves ext_authz Check and RateLimitService on one port (Envoy calls both over one
    HTTP/2 channel), health and reflection beside them, and the admin API on its own port.
    """

    def __init__(
        self,
        config_path: str | Path,
        listen: str | None = None,
        admin_listen: str | None = None,
        metrics_listen: str | None = None,
        http_listen: str | None = None,
    ) -> None:
        self.registry = JwksRegistry()
        self.stores = QuotaStoreHolder()
        self.reloader: ConfigReloader[Runtime] = ConfigReloader(
            config_path,
            lambda loaded: build_runtime(loaded, self.registry, self.stores),
            self._after_reload,
        )
        config = self.reloader.current.loaded.config
        self.listen = listen or config.server.listen
        self.admin_listen = admin_listen or config.admin.listen
        self.metrics_listen = metrics_listen or config.telemetry.metrics.listen
        self.http_listen = http_listen or (config.http_check.listen if config.http_check else None)
        self.grace_period_s = config.server.grace_period_s
        self.metrics = Metrics()
        self.metrics.add_state_collector(ServiceStateCollector(self.reloader, self._store_stats))
        self._connection_stats: list[ConnectionStats] = []
        self.metrics.add_state_collector(ConnectionCollector(self._connection_stats))
        self.telemetry = Telemetry(config.telemetry, self.metrics)
        self._observability: ObservabilityServer | None = None
        self.http_check: HttpCheckServer | None = None  # http_check: (authz_service/http/)
        self._draining = False
        self.revocation_store = build_revocation_store(config.revocation)
        self.checks = CheckService(lambda: self.reloader.current, self.revocation_store.revocations)
        self.health = HealthServicer()
        self._server: grpc.aio.Server | None = None
        self._admin_server: grpc.aio.Server | None = None
        self._stop_watching = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self.port = 0
        self.admin_port = 0
        self.metrics_port = 0
        self.certificates: ReloadingCertificates | None = None

    @property
    def runtime(self) -> Runtime:
        return self.reloader.current

    async def _after_reload(self, runtime: Runtime) -> None:
        await self.registry.retain_only(runtime.loaded.config.jwt_providers)

    def _limiter(self) -> RateLimiter | None:
        return self.reloader.current.limiter

    def _store_stats(self) -> list[tuple[str, float]]:
        return store_stats(self.stores.store)

    def _readiness(self) -> tuple[bool, dict[str, object]]:
        runtime = self.reloader.current
        jwks = {
            verifier.provider.name: len(verifier.jwks.keys)
            for verifier in runtime.authenticator.verifiers.values()
        }
        # A provider without keys refuses every token it issued: until its JWKS has been
        # fetched, send traffic to replicas that can decide (fail closed stays the answer).
        waiting = sorted(name for name, count in jwks.items() if count == 0)
        ready = self._server is not None and not self._draining and not waiting
        details: dict[str, object] = {"config_version": runtime.version, "jwks_keys": jwks}
        if waiting:
            details["waiting_for_jwks"] = waiting
        return ready, details

    async def start(self) -> None:
        config = self.runtime.loaded.config
        # Before any port opens: the caps must fit the open-file limit, or they protect nothing.
        ensure_descriptors(
            config,
            OpenPorts(
                admin=self.admin_listen is not None,
                metrics=self.metrics_listen is not None,
                http_check=self.http_listen is not None,
            ),
        )
        tls = config.server.tls
        interceptors = (
            [ClientSanInterceptor(tls.allowed_client_sans)]
            if tls is not None and tls.allowed_client_sans
            else []
        )
        self._server = grpc.aio.server(
            options=server_options(config.server),
            maximum_concurrent_rpcs=config.server.max_concurrent_rpcs,
            interceptors=interceptors,
        )
        add_authorization_servicer(AuthorizationServicer(self.checks, self.telemetry), self._server)
        add_ratelimit_servicer(self._server, self._limiter, self.telemetry)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self._server)
        reflection.enable_server_reflection(
            (*SERVED, HEALTH_SERVICE, reflection.SERVICE_NAME), self._server
        )
        if tls is not None:
            credentials, self.certificates = server_credentials(tls)
            self.port = self._server.add_secure_port(self.listen, credentials)
        else:
            self.port = self._server.add_insecure_port(self.listen)
        if self.port == 0:
            raise OSError(f"cannot listen on {self.listen}")
        if self.admin_listen is not None:
            self._admin_server = self._build_admin_server(config.admin)
            if config.admin.tls and tls is not None:
                # The gRPC port's certificate and client CA, re-read alike (a credentials
                # object of its own: gRPC's certificate fetcher serves one server).
                admin_credentials, _ = server_credentials(tls)
                self.admin_port = self._admin_server.add_secure_port(
                    self.admin_listen, admin_credentials
                )
            else:
                self.admin_port = self._admin_server.add_insecure_port(self.admin_listen)
            if self.admin_port == 0:
                raise OSError(f"cannot listen on {self.admin_listen} (admin)")
        tracing.configure(config.telemetry)
        if self.metrics_listen is not None:
            metrics_settings = config.telemetry.metrics
            self._observability = ObservabilityServer(
                self.metrics,
                self._readiness,
                metrics_settings.token_hash,
                metrics_settings.connections,
            )
            self._connection_stats.append(self._observability.stats)
            await self._observability.start(self.metrics_listen)
            self.metrics_port = self._observability.port
            self._tasks.append(asyncio.create_task(self.metrics.probe_event_loop()))
        self.registry.start()
        await self.revocation_store.start()
        if config.http_check is not None:
            self.http_check = HttpCheckServer(
                config.http_check, self.checks, self.telemetry, self.grace_period_s
            )
            self._connection_stats.append(self.http_check.stats)
            await self.http_check.start(self.http_listen)
        await self._server.start()
        if self._admin_server is not None:
            await self._admin_server.start()
        for service in ("", *SERVED):
            await self.health.set(service, health_pb2.HealthCheckResponse.SERVING)
        if config.server.watch_config:
            self._tasks.append(asyncio.create_task(self.reloader.watch(self._stop_watching)))
        log.info("serving on %s (config version %s)", self.listen, self.runtime.version)

    def _build_admin_server(self, settings: AdminSettings) -> grpc.aio.Server:
        token_hash = settings.token_hash
        interceptors = [AdminTokenInterceptor(token_hash)] if token_hash else []
        options = [("grpc.so_reuseport", 0), *grpc_options(settings.connections)]
        server = grpc.aio.server(interceptors=interceptors, options=options)
        admin_pb2_grpc.add_AdminServiceServicer_to_server(
            AdminServicer(
                self.checks, self.reloader, self.revocation_store, QuotaAdmin(self._limiter)
            ),
            server,
        )
        reflection.enable_server_reflection((ADMIN_SERVICE, reflection.SERVICE_NAME), server)
        return server

    async def stop(self) -> None:
        """NOT_SERVING first (so health checks steer traffic away), then drain, then exit."""
        self._draining = True
        await self.health.enter_graceful_shutdown()
        drain = self.runtime.loaded.config.server.drain_delay_s
        if drain:
            log.info("NOT_SERVING; still answering for %.1fs before closing", drain)
            await asyncio.sleep(drain)
        self._stop_watching.set()
        if self._admin_server is not None:
            await self._admin_server.stop(0)
        if self.http_check is not None:
            await self.http_check.stop()
        if self._server is not None:
            await self._server.stop(self.grace_period_s)
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self.registry.close()
        await self.revocation_store.close()
        await self.stores.close()
        if self._observability is not None:
            await self._observability.stop()
        self.telemetry.close()


def tune_garbage_collector() -> None:
    """Startup objects (config, protobuf descriptors, keys) never die: move them out of the
    collector's way, and collect the young generation less often. Each Check allocates a few
    short-lived objects; with default thresholds gen-0 collections cost ~15% of a warm Check.
    The soak benchmark shows RSS flat with these settings."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 50, 100)


async def serve(
    config_path: str | Path,
    listen: str | None = None,
    admin_listen: str | None = None,
    metrics_listen: str | None = None,
    http_listen: str | None = None,
) -> None:
    server = AuthzServer(config_path, listen, admin_listen, metrics_listen, http_listen)
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stopping.set)
    loop.add_signal_handler(signal.SIGINT, stopping.set)
    reloads: set[asyncio.Task[bool]] = set()

    def reload_on_sighup() -> None:
        task = loop.create_task(server.reloader.reload())
        reloads.add(task)
        task.add_done_callback(reloads.discard)

    loop.add_signal_handler(signal.SIGHUP, reload_on_sighup)
    await server.start()
    tune_garbage_collector()
    try:
        await stopping.wait()
        log.info("shutting down (grace %.1fs)", server.grace_period_s)
    finally:
        await server.stop()
