"""The server: the gRPC ports (Check, ShouldRateLimit, health, reflection, admin), the HTTP
check and metrics ports, hot reload, and a graceful stop. The process around it: process.py."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import grpc
from envoy.service.auth.v3 import external_auth_pb2
from envoy.service.ratelimit.v3 import rls_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer
from grpc_reflection.v1alpha import reflection

from authz_service.admin.v1 import admin_pb2_grpc
from authz_service.authn.introspection_registry import IntrospectionRegistry, figures_of
from authz_service.authn.jwks import JwksCache
from authz_service.authn.jwks_registry import JwksRegistry
from authz_service.authn.revocation import build_revocation_store
from authz_service.config.reload import ConfigReloader
from authz_service.grpc.admin_servicer import ADMIN_SERVICE, AdminServicer, AdminTokenInterceptor
from authz_service.grpc.authorization_servicer import (
    AuthorizationServicer,
    add_authorization_servicer,
)
from authz_service.grpc.quota_servicer import SERVICE_NAME as QUOTA_SERVICE
from authz_service.grpc.quota_servicer import add_quota_servicer
from authz_service.grpc.ratelimit_servicer import add_ratelimit_servicer
from authz_service.grpc.server_options import bind_port, grpc_options, server_options
from authz_service.grpc.tls import ClientSanInterceptor, ReloadingCertificates, server_credentials
from authz_service.http.check_endpoint import HttpCheckServer
from authz_service.http.granian_server import GranianCheckServer
from authz_service.http.observability_server import ObservabilityServer
from authz_service.preflight.open_files import OpenPorts, ensure_descriptors
from authz_service.preflight.ports import ListenError, check_all
from authz_service.ratelimit.limiter import RateLimiter
from authz_service.schema import AdminSettings, Config, RedisSettings
from authz_service.services.check import CheckService
from authz_service.services.compiled_config import CompiledConfig, QuotaStoreHolder, compile_config
from authz_service.services.quota_admin import QuotaAdmin
from authz_service.services.quota_wiring import build_quota_service
from authz_service.telemetry import tracing
from authz_service.telemetry.connection_metrics import ConnectionCollector, ConnectionStats
from authz_service.telemetry.introspection_metrics import IntrospectionCollector
from authz_service.telemetry.metrics import Metrics, ServiceStateCollector
from authz_service.telemetry.reporter import Reporter

log = logging.getLogger(__name__)

AUTHORIZATION_SERVICE = external_auth_pb2.DESCRIPTOR.services_by_name["Authorization"].full_name
RATELIMIT_SERVICE = rls_pb2.DESCRIPTOR.services_by_name["RateLimitService"].full_name
HEALTH_SERVICE = health_pb2.DESCRIPTOR.services_by_name["Health"].full_name
SERVED = (AUTHORIZATION_SERVICE, RATELIMIT_SERVICE, QUOTA_SERVICE)


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
        self.introspection = IntrospectionRegistry()  # opaque tokens' verifiers and caches
        self.stores = QuotaStoreHolder()
        self.reloader: ConfigReloader[CompiledConfig] = ConfigReloader(
            config_path,
            lambda loaded: compile_config(loaded, self.registry, self.stores, self.introspection),
            self._after_reload,
        )
        config = self.reloader.current.loaded.config
        self.listen = listen or config.server.listen
        self.admin_listen = admin_listen or config.admin.listen
        self.metrics_listen = metrics_listen or config.telemetry.metrics.listen
        self.http_listen = http_listen or (config.http_check.listen if config.http_check else None)
        self.grace_period_s = config.server.grace_period_s
        self.metrics = Metrics()
        self.metrics.add_state_collector(
            ServiceStateCollector(
                self.reloader.status,
                self._jwks_caches,
                lambda: self.reloader.current.authenticator.token_cache,
                self._store_stats,
                self.stores.outages.counts,
            )
        )
        self.metrics.add_state_collector(
            IntrospectionCollector(
                lambda: figures_of(self.reloader.current.authenticator.introspection)
            )
        )
        self._connection_stats: list[ConnectionStats] = []
        self.metrics.add_state_collector(ConnectionCollector(self._connection_stats))
        self.telemetry = Reporter(config.telemetry, self.metrics)
        self._observability: ObservabilityServer | None = None
        self.http_check: HttpCheckServer | GranianCheckServer | None = (
            None  # http_check: (authz_service/http/)
        )
        self._draining = False
        self.revocation_store = build_revocation_store(config.revocation, _redis_client)
        self.checks = CheckService(lambda: self.reloader.current, self.revocation_store.revocations)
        self.quota_service = build_quota_service(  # RLQS: Envoys' shares of each limit
            lambda: self.reloader.current,
            config,
            self.metrics,
            self.telemetry.audit,
            self.stores.outages,
        )
        self.health = HealthServicer()
        self._server: grpc.aio.Server | None = None
        self._admin_server: grpc.aio.Server | None = None
        self._stop_watching = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self.port = 0
        self.admin_port = 0
        self.metrics_port = 0
        self.certificates: ReloadingCertificates | None = None
        self._client_sans: ClientSanInterceptor | None = None
        self._admin_auth: AdminTokenInterceptor | None = None
        self._grpc_started: set[grpc.aio.Server] = set()

    @property
    def compiled_config(self) -> CompiledConfig:
        return self.reloader.current

    async def _after_reload(self, compiled: CompiledConfig) -> None:
        self._apply_live(compiled.loaded.config)
        await self.registry.retain_only(compiled.loaded.config.jwt_providers)
        await self.introspection.retain_only(compiled.loaded.config.introspection_providers)

    def _apply_live(self, config: Config) -> None:
        """Put a reloaded config's security settings in force on the running ports, at once
        (no await: no request sees new policies with old settings). Start-only settings stay
        as started and are reported by the reloader (config/reloadable.py)."""
        pending = set(self.reloader.status().restart_required)
        if self._admin_auth is not None and "admin.token_hash" not in pending:
            self._admin_auth.token_hash = config.admin.token_hash
        if self._observability is not None and "telemetry.metrics.token_hash" not in pending:
            self._observability.token_hash = config.telemetry.metrics.token_hash
        if self._client_sans is not None and config.server.tls is not None:
            self._client_sans.update(config.server.tls.allowed_client_sans)
        if self.http_check is not None and config.http_check is not None:
            self.http_check.update(config.http_check)

    def _limiter(self) -> RateLimiter | None:
        return self.reloader.current.limiter

    def _jwks_caches(self) -> list[tuple[str, JwksCache]]:
        verifiers = self.reloader.current.authenticator.verifiers.values()
        return [(verifier.provider.name, verifier.jwks) for verifier in verifiers]

    def _store_stats(self) -> Mapping[str, float]:
        store = self.stores.store
        return store.stats() if store is not None else {}

    def _readiness(self) -> tuple[bool, dict[str, object]]:
        compiled = self.reloader.current
        jwks = {
            verifier.provider.name: len(verifier.jwks.keys)
            for verifier in compiled.authenticator.verifiers.values()
        }
        # A provider without keys refuses every token it issued: until its JWKS has been
        # fetched, send traffic to replicas that can decide (fail closed stays the answer).
        waiting = sorted(name for name, count in jwks.items() if count == 0)
        ready = self._server is not None and not self._draining and not waiting
        details: dict[str, object] = {"config_version": compiled.version, "jwks_keys": jwks}
        if waiting:
            details["waiting_for_jwks"] = waiting
        return ready, details

    def _listens(self) -> list[tuple[str, str | None]]:
        http = (
            self.http_listen if self.compiled_config.loaded.config.http_check is not None else None
        )
        return [
            ("server.listen", self.listen),
            ("admin.listen", self.admin_listen),
            ("telemetry.metrics.listen", self.metrics_listen),
            ("http_check.listen", http),
        ]

    async def start(self) -> None:
        """Start every port, or none: a failure stops what had started and raises
        ListenError (a port that cannot be bound, checked before anything starts)."""
        check_all(self._listens())
        try:
            await self._start()
        except BaseException:
            await self._close(0)
            raise

    async def _start(self) -> None:
        config = self.compiled_config.loaded.config
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
        # With client certificates asked for, the SAN check is in place even with an empty
        # allow-list, so that a reload can set one (an empty list lets every call through).
        if tls is not None and tls.client_ca_file is not None:
            self._client_sans = ClientSanInterceptor(tls.allowed_client_sans)
        interceptors = [self._client_sans] if self._client_sans is not None else []
        self._server = grpc.aio.server(
            options=server_options(config.server),
            maximum_concurrent_rpcs=config.server.max_concurrent_rpcs,
            interceptors=interceptors,
        )
        add_authorization_servicer(AuthorizationServicer(self.checks, self.telemetry), self._server)
        add_ratelimit_servicer(self._server, self._limiter, self.telemetry)
        add_quota_servicer(self._server, self.quota_service)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self._server)
        reflection.enable_server_reflection(
            (*SERVED, HEALTH_SERVICE, reflection.SERVICE_NAME), self._server
        )
        credentials = None
        if tls is not None:
            credentials, self.certificates = server_credentials(tls)
        self.port = bind_port(self._server, "server.listen", self.listen, credentials)
        if self.admin_listen is not None:
            self._admin_server = self._build_admin_server(config.admin)
            # The gRPC port's certificate and client CA, re-read alike (a credentials object
            # of its own: gRPC's certificate fetcher serves one server).
            admin_credentials = server_credentials(tls)[0] if config.admin.tls and tls else None
            self.admin_port = bind_port(
                self._admin_server, "admin.listen", self.admin_listen, admin_credentials
            )
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
            try:
                await self._observability.start(self.metrics_listen)
            except OSError as error:
                raise _listen_error(
                    "telemetry.metrics.listen", self.metrics_listen, error
                ) from None
            self.metrics_port = self._observability.port
            self._tasks.append(asyncio.create_task(self.metrics.probe_event_loop()))
        self.registry.start()
        await self.revocation_store.start()
        if config.http_check is not None:
            serve_with = (
                GranianCheckServer if config.http_check.server == "granian" else HttpCheckServer
            )
            self.http_check = serve_with(
                config.http_check, self.checks, self.telemetry, self.grace_period_s
            )
            if self.http_check.stats is not None:  # granian's connections are its own
                self._connection_stats.append(self.http_check.stats)
            try:
                await self.http_check.start(self.http_listen)
            except OSError as error:
                raise _listen_error("http_check.listen", self.http_listen, error) from None
        await self._server.start()
        self._grpc_started.add(self._server)
        if self._admin_server is not None:
            await self._admin_server.start()
            self._grpc_started.add(self._admin_server)
        for service in ("", *SERVED):
            await self.health.set(service, health_pb2.HealthCheckResponse.SERVING)
        if config.server.watch_config:
            self._tasks.append(asyncio.create_task(self.reloader.watch(self._stop_watching)))
        log.info("serving on %s (config version %s)", self.listen, self.compiled_config.version)

    def _build_admin_server(self, settings: AdminSettings) -> grpc.aio.Server:
        # Always in place (a pass-through without a token), so that a reload can set one.
        self._admin_auth = AdminTokenInterceptor(settings.token_hash)
        options = [("grpc.so_reuseport", 0), *grpc_options(settings.connections)]
        server = grpc.aio.server(interceptors=[self._admin_auth], options=options)
        admin_pb2_grpc.add_AdminServiceServicer_to_server(
            AdminServicer(
                self.checks,
                self.reloader,
                self.revocation_store,
                QuotaAdmin(self._limiter),
                self.quota_service,
            ),
            server,
        )
        reflection.enable_server_reflection((ADMIN_SERVICE, reflection.SERVICE_NAME), server)
        return server

    async def stop(self) -> None:
        """NOT_SERVING first (so health checks steer traffic away), then drain, then exit."""
        self._draining = True
        self.quota_service.end_streams()
        await self.health.enter_graceful_shutdown()
        drain = self.compiled_config.loaded.config.server.drain_delay_s
        if drain:
            log.info("NOT_SERVING; still answering for %.1fs before closing", drain)
            await asyncio.sleep(drain)
        await self._close(self.grace_period_s)

    async def _close(self, grace_period_s: float) -> None:
        """Stop whatever has started (all of it after serving; part of it after a failed
        start, so that the process exits instead of staying half up)."""
        self._draining = True
        self._stop_watching.set()
        if self._admin_server is not None:
            await _release(self._admin_server, self._admin_server in self._grpc_started, 0)
        if self.http_check is not None:
            await self.http_check.stop()
        if self._server is not None:
            await _release(self._server, self._server in self._grpc_started, grace_period_s)
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self.registry.close()
        await self.introspection.close()
        await self.revocation_store.close()
        await self.stores.close()
        await self.quota_service.close()
        if self._observability is not None:
            await self._observability.stop()
        self.telemetry.close()


async def _release(server: grpc.aio.Server, started: bool, grace_period_s: float) -> None:
    """Stop a gRPC server and close its ports. gRPC listens from `add_*_port` on, and only
    stopping a started server closes the socket: after a start that failed half-way, the
    bound server is started and at once stopped with no grace (health never said SERVING)."""
    if not started:
        await server.start()
        grace_period_s = 0
    await server.stop(grace_period_s)


def _listen_error(setting: str, address: str | None, error: OSError) -> ListenError:
    return ListenError(f"{setting} {address}: cannot listen: {error.strerror or error}")


def _redis_client(settings: RedisSettings) -> Any:
    """The quota store's client factory, imported only when a Redis is configured."""
    from authz_service.ratelimit.redis_store import create_client

    return create_client(settings)
