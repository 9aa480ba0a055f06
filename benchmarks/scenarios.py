"""The five scenarios of issue 4. Each returns {"title", "rows", "ratios", ...}; a row either
has numbers, or says `skipped: why` (never a made-up number)."""

from __future__ import annotations

import contextlib
import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks import fixtures, messages, services
from benchmarks.envoy_configs import render_variant
from benchmarks.load import LoadResult, run_h2grpc, run_h2load, run_wrk
from benchmarks.measure import Row, Target, ratio, run_group, skipped
from benchmarks.procstat import process_tree, rss_bytes
from tools.processes import Process, free_port, wait_for_port

Scenario = dict[str, Any]


@dataclass
class Settings:
    seconds: float  # per row, split over the rounds
    rounds: int
    warmup: float
    conns: int = 16
    streams: int = 8
    http_conns: int = 32
    memory_checks: int = 100_000
    soak_seconds: float = 300.0

    @property
    def per_round(self) -> float:
        return max(1.0, self.seconds / self.rounds)


@dataclass
class Bench:
    """What the scenarios share: settings, the token pool, prepared bodies, tools, processes."""

    settings: Settings
    workdir: Path
    pool: fixtures.TokenPool
    h2grpc: Path | None
    h2grpc_missing: str
    check_frames: Path
    check_single: Path
    rate_limit_frames: Path
    rate_limit_single: Path
    tokens_file: Path
    null_port: int
    null_pid: int
    _processes: list[Process] = field(default_factory=list)

    def keep(self, process: Process) -> Process:
        self._processes.append(process)
        return process

    def stop_all(self) -> None:
        for process in reversed(self._processes):
            process.stop()
        self._processes.clear()

    # -- loads ---------------------------------------------------------------------------

    def grpc_load(self, ports: list[int], path: str, data: Path) -> Callable[[float], LoadResult]:
        assert self.h2grpc is not None
        binary, s = self.h2grpc, self.settings

        def run(seconds: float) -> LoadResult:
            return run_h2grpc(
                binary,
                ports=ports,
                path=path,
                data=data,
                conns=s.conns,
                streams=s.streams,
                duration=seconds,
            )

        return run

    def h2load(self, port: int, path: str, data: Path) -> Callable[[float], LoadResult]:
        s, log_file = self.settings, self.workdir / f"h2load-{port}.log"

        def run(seconds: float) -> LoadResult:
            return run_h2load(
                port=port,
                path=path,
                data=data,
                conns=s.conns,
                streams=s.streams,
                duration=seconds,
                warmup=0.0,
                log_file=log_file,
            )

        return run

    def wrk(self, port: int, path: str = messages.REQUEST_PATH) -> Callable[[float], LoadResult]:
        def run(seconds: float) -> LoadResult:
            return run_wrk(url=url, tokens_file=self.tokens_file, conns=conns, duration=seconds)

        url, conns = f"http://127.0.0.1:{port}{path}", self.settings.http_conns
        return run

    def warm_up(self, port: int, data: Path) -> None:
        """Every body of the pool once (so each token has been seen)."""
        assert self.h2grpc is not None
        run_h2grpc(
            self.h2grpc,
            ports=[port],
            path=messages.CHECK_PATH,
            data=data,
            conns=4,
            streams=4,
            requests=len(self.pool.tokens),
        )

    def group(self, targets: list[Target]) -> list[Row]:
        s = self.settings
        return run_group(targets, rounds=s.rounds, seconds=s.per_round, warmup=s.warmup)

    # -- the service -----------------------------------------------------------------------

    def service(
        self,
        name: str,
        *,
        cache: int = 10_000,
        extra: dict[str, Any] | None = None,
        workers: int | None = None,
        extra_args: Sequence[str] = (),
        rules: list[dict[str, Any]] | None = None,
    ) -> tuple[Process, int]:
        port = _free_port_range(workers or 1)
        config = fixtures.service_config(
            self.workdir / f"{name}.yaml",
            port=port,
            jwks_uri=self.pool.idp.jwks_uri,
            token_cache_max_entries=cache,
            extra=extra,
            rules=rules,
        )
        process = services.start_service(config, port, self.workdir, name, workers, extra_args)
        return self.keep(process), port

    def config_problem(self, name: str, extra: dict[str, Any]) -> str | None:
        config = fixtures.service_config(
            self.workdir / f"{name}-probe.yaml",
            port=free_port(),
            jwks_uri=self.pool.idp.jwks_uri,
            extra=extra,
        )
        return services.config_accepted(config)


def _free_port_range(count: int) -> int:
    """A port p such that p .. p+count-1 are all free now."""
    for _ in range(50):
        base = free_port()
        try:
            with contextlib.ExitStack() as stack:
                for port in range(base, base + count):
                    sock = stack.enter_context(socket.socket())
                    sock.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
    raise OSError(f"no {count} consecutive free ports")


@contextlib.contextmanager
def _stopping(bench: Bench) -> Iterator[None]:
    try:
        yield
    finally:
        bench.stop_all()


def _failed(title: str, key: str, error: BaseException) -> Scenario:
    return {
        "title": title,
        "rows": [{"key": key, "name": key, "error": f"{type(error).__name__}: {error}"}],
        "ratios": [],
    }


def _needs_h2grpc(bench: Bench, keys: list[tuple[str, str]]) -> list[Row] | None:
    if bench.h2grpc is None:
        return [skipped(k, n, bench.h2grpc_missing) for k, n in keys]
    return None


# -- 1. Check --------------------------------------------------------------------------


CHECK_ROWS = [
    ("null", "null Check (same grpc.aio stack)"),
    ("warm", "Check, warm: 1,000 tokens seen before"),
    ("cold", "Check, cold: every token first sight"),
    ("null_h2load", "null Check (h2load, one body)"),
    ("warm_h2load", "Check, warm (h2load, one token)"),
    ("null_http", "null HTTP check (granian, wrk direct)"),
    ("warm_http", "HTTP check on granian, warm (wrk direct, 1,000 tokens)"),
    ("cold_http", "HTTP check on granian, cold (wrk direct)"),
    ("warm_asyncio", "Check, warm, on asyncio's own event loop (not uvloop)"),
    ("warm_http_asyncio", "HTTP check, warm, on asyncio's own event loop (not uvloop)"),
    ("worst", "Check, worst case: all 50 rules tried, 10,000 distinct paths (no cache helps)"),
]
HTTP_CHECK_PATH = "/envoy" + messages.REQUEST_PATH  # the mount of fixtures.http_check_section


def _server_row(
    rows: list[tuple[str, str]],
    key: str,
    load: Callable[[float], LoadResult],
    pid: int,
    verified: str = "",
) -> Target:
    """Row `key` of `rows`, loading one server process (its tree's CPU is the row's)."""
    return Target(key, dict(rows)[key], load, {"server": pid}, verified)


def scenario_check(bench: Bench) -> Scenario:
    title = "1. Check: RS256 + 50 RBAC rules + 10 headers vs null handler (direct gRPC)"
    missing = _needs_h2grpc(bench, CHECK_ROWS)
    if missing is not None:
        return {"title": title, "rows": missing, "ratios": []}
    with _stopping(bench):
        # Each service serves both transports (one process, one token cache): the gRPC rows
        # load its gRPC port, the HTTP rows its HTTP check port on granian.
        warm_http_port, cold_http_port = free_port(), free_port()
        warm, warm_port = bench.service(
            "authz-warm", extra=fixtures.http_check_section(warm_http_port)
        )
        # Cold: the verified-token cache holds half the pool and the loader walks the pool
        # in order, so every lookup misses: verify, insert, evict on every request.
        cold, cold_port = bench.service(
            "authz-cold",
            cache=len(bench.pool.tokens) // 2,
            extra=fixtures.http_check_section(cold_http_port),
        )
        bodies = fixtures.check_bodies(bench.pool)
        verified_warm = services.expect_allowed(warm_port, bodies)
        verified_cold = services.expect_allowed(cold_port, bodies)
        bench.warm_up(warm_port, bench.check_frames)
        # The worst case: a policy the path index cannot narrow (the allowing rule last) and
        # more distinct paths than RBAC caches, so every Check tries all 50 rules afresh.
        worst, worst_port = bench.service("authz-worst", rules=fixtures.worst_case_rules())
        worst_bodies = fixtures.worst_case_bodies(bench.pool)
        worst_frames = fixtures.write_frames(bench.workdir / "check-worst.bin", worst_bodies)
        verified_worst = services.expect_allowed(worst_port, worst_bodies)
        bench.warm_up(worst_port, bench.check_frames)  # tokens seen: warm but for the paths

        def grpc_row(
            key: str, port: int, pid: int, verified: str = "", frames: Path = bench.check_frames
        ) -> Target:
            load = bench.grpc_load([port], messages.CHECK_PATH, frames)
            return _server_row(CHECK_ROWS, key, load, pid, verified)

        def h2load_row(key: str, port: int, pid: int, verified: str = "") -> Target:
            load = bench.h2load(port, messages.CHECK_PATH, bench.check_single)
            return _server_row(CHECK_ROWS, key, load, pid, verified)

        def http_row(key: str, port: int, pid: int, verified: str = "") -> Target:
            return _server_row(CHECK_ROWS, key, bench.wrk(port, HTTP_CHECK_PATH), pid, verified)

        targets = [
            grpc_row("null", bench.null_port, bench.null_pid),
            grpc_row("warm", warm_port, warm.popen.pid, verified_warm),
            grpc_row("cold", cold_port, cold.popen.pid, verified_cold),
        ]
        targets.append(
            grpc_row("worst", worst_port, worst.popen.pid, verified_worst, frames=worst_frames)
        )
        if shutil.which("h2load"):
            targets += [
                h2load_row("null_h2load", bench.null_port, bench.null_pid),
                h2load_row("warm_h2load", warm_port, warm.popen.pid, verified_warm),
            ]
        if shutil.which("wrk"):
            null_http, null_http_port = services.start_null_http_server(bench.workdir)
            bench.keep(null_http)
            for http_port in (warm_http_port, cold_http_port):
                wait_for_port(http_port)
                url = f"http://127.0.0.1:{http_port}{HTTP_CHECK_PATH}"
                answers = (
                    services.http_status(url, bench.pool.tokens[0]),
                    services.http_status(url, None),
                )
                if answers != (200, 401):
                    raise RuntimeError(
                        f"{url}: 200 with a token, 401 without expected, got {answers}"
                    )
            targets += [
                http_row("null_http", null_http_port, null_http.popen.pid),
                http_row("warm_http", warm_http_port, warm.popen.pid, verified_warm),
                http_row("cold_http", cold_http_port, cold.popen.pid, verified_cold),
            ]
            # The same warm service on asyncio's loop: what uvloop (the default) is worth.
            if services.serve_supports_loop_choice():
                plain_http_port = free_port()
                plain, plain_port = bench.service(
                    "authz-asyncio",
                    extra=fixtures.http_check_section(plain_http_port),
                    extra_args=["--loop", "asyncio"],
                )
                services.expect_allowed(plain_port, bodies)
                bench.warm_up(plain_port, bench.check_frames)
                wait_for_port(plain_http_port)
                targets += [
                    grpc_row("warm_asyncio", plain_port, plain.popen.pid),
                    http_row("warm_http_asyncio", plain_http_port, plain.popen.pid),
                ]
        rows = bench.group(targets)
        if not shutil.which("h2load"):
            rows += [skipped(k, n, "h2load is not installed") for k, n in CHECK_ROWS[3:5]]
        if not shutil.which("wrk"):
            rows += [skipped(k, n, "wrk is not installed") for k, n in CHECK_ROWS[5:10]]
        elif not services.serve_supports_loop_choice():
            why = "serve has no --loop (no event loop choice)"
            rows += [skipped(k, n, why) for k, n in CHECK_ROWS[8:10]]
        cache_note = {
            "warm_cache_entries": 10_000,
            "cold_cache_entries": len(bench.pool.tokens) // 2,
        }
    return {
        "title": title,
        "rows": rows,
        "ratios": [
            ratio("warm / null", rows, "warm", "null", 0.9),
            ratio("cold / null", rows, "cold", "null", 0.6),
            ratio("warm / null (h2load, one token)", rows, "warm_h2load", "null_h2load", 0.9),
            ratio("loader check: null via h2grpc / via h2load", rows, "null", "null_h2load"),
            ratio("HTTP warm / null HTTP", rows, "warm_http", "null_http", 0.9),
            ratio("HTTP cold / null HTTP", rows, "cold_http", "null_http", 0.6),
            ratio("worst case / null", rows, "worst", "null"),
            ratio("worst case / warm", rows, "worst", "warm"),
            ratio("warm on uvloop / on asyncio's loop", rows, "warm", "warm_asyncio"),
            ratio(
                "HTTP warm on uvloop / on asyncio's loop", rows, "warm_http", "warm_http_asyncio"
            ),
        ],
        "settings": cache_note,
    }


# -- 2. ShouldRateLimit ----------------------------------------------------------------


RATE_LIMIT_ROWS = [
    ("null_rls", "null ShouldRateLimit"),
    ("rls", "ShouldRateLimit, 3 descriptors, Redis"),
    # The same on redis-py's connection pool (`connection: pool`, the client before issue 14).
    ("rls_pool", "ShouldRateLimit, 3 descriptors, Redis, redis-py pool"),
]


def _rate_limit_unavailable(bench: Bench, redis_url: str) -> str | None:
    if not services.ratelimit_servicer_importable():
        return "authz_service.grpc.ratelimit_servicer is not importable"
    problem = bench.config_problem("rls", {"rate_limit": fixtures.rate_limit_section(redis_url)})
    if problem is not None:
        return f"the service config does not accept a rate_limit section yet ({problem})"
    return None


def _serving_rate_limit(bench: Bench, port: int) -> str | None:
    problem = services.rate_limit_served(port, fixtures.rate_limit_bodies(1)[0])
    return None if problem is None else f"the server does not serve RateLimitService: {problem}"


def scenario_rate_limit(bench: Bench) -> Scenario:
    title = "2. ShouldRateLimit: three descriptors on Redis vs null handler"
    missing = _needs_h2grpc(bench, RATE_LIMIT_ROWS)
    if missing is not None:
        return {"title": title, "rows": missing, "ratios": []}
    with _stopping(bench):
        redis = services.start_redis(bench.workdir)
        why = redis if isinstance(redis, str) else None
        if not isinstance(redis, str):
            redis_process, redis_port = redis
            bench.keep(redis_process)
            redis_url = f"redis://127.0.0.1:{redis_port}/0"
            why = _rate_limit_unavailable(bench, redis_url)
        service_port = pool_port = 0
        pool_why = why
        if why is None:
            extra = {"rate_limit": fixtures.rate_limit_section(redis_url)}
            service, service_port = bench.service("authz-rls", extra=extra)
            why = _serving_rate_limit(bench, service_port)
            # Its own Redis, so that each row's commands per RPC are its own.
            (bench.workdir / "pool").mkdir(exist_ok=True)
            pool_redis = services.start_redis(bench.workdir / "pool")
            assert not isinstance(pool_redis, str)  # the first one started
            bench.keep(pool_redis[0])
            pooled = fixtures.rate_limit_section(f"redis://127.0.0.1:{pool_redis[1]}/0")
            pooled["redis"]["connection"] = "pool"
            pool_service, pool_port = bench.service("authz-rls-pool", extra={"rate_limit": pooled})

        def rls_row(key: str, port: int, pid: int) -> Target:
            load = bench.grpc_load([port], messages.RATE_LIMIT_PATH, bench.rate_limit_frames)
            return _server_row(RATE_LIMIT_ROWS, key, load, pid)

        targets = [rls_row("null_rls", bench.null_port, bench.null_pid)]
        if why is None:
            targets.append(rls_row("rls", service_port, service.popen.pid))
            pool_why = _serving_rate_limit(bench, pool_port)
            if pool_why is None:
                targets.append(rls_row("rls_pool", pool_port, pool_service.popen.pid))
            redis_ports = {"rls": redis_port, "rls_pool": pool_redis[1]}
            before = {key: services.redis_command_calls(p) for key, p in redis_ports.items()}
        rows = bench.group(targets)
        extra_info: dict[str, Any] = {}
        if why is None:
            for row in rows[1:]:
                port = redis_ports[row["key"]]
                after = services.redis_command_calls(port)
                was = before[row["key"]]
                delta = {c: after[c] - was.get(c, 0) for c in after if c != "info"}
                if row["key"] == "rls":
                    extra_info["redis_commands"] = {c: n for c, n in delta.items() if n}
                # Redis saw the unmeasured warm-up rounds too.
                rpcs = (row["completed_total"] + row["warmup_completed"]) or 1
                # INFO commandstats also counts the commands a script runs inside Redis: the
                # round trips are the script calls (plus any command that is not a script's).
                scripts = sum(delta.get(c, 0) for c in ("evalsha", "eval", "fcall", "evalsha_ro"))
                row["redis_commands_per_rpc"] = round(sum(delta.values()) / rpcs, 3)
                row["redis_script_calls_per_rpc"] = round(scripts / rpcs, 3)
            if pool_why is not None:
                rows.append(skipped(*RATE_LIMIT_ROWS[2], pool_why))
        else:
            rows.append(skipped(*RATE_LIMIT_ROWS[1], why))
            rows.append(skipped(*RATE_LIMIT_ROWS[2], why))
    return {
        "title": title,
        "rows": rows,
        "ratios": [
            ratio("ShouldRateLimit / null", rows, "rls", "null_rls", 0.6),
            ratio("ShouldRateLimit on redis-py's pool / null", rows, "rls_pool", "null_rls"),
        ],
        **extra_info,
    }


# -- 3. Through Envoy --------------------------------------------------------------------


ENVOY_ROWS = [
    ("plain", "plain Envoy (no ext_authz)"),
    ("null_authz", "Envoy + null ext_authz"),
    ("null_authz_rl", "Envoy + null ext_authz + null ratelimit"),
    ("service_authz", "Envoy + authz_service (auth + RBAC)"),
    ("null_authz_http", "Envoy http_service + null HTTP server (granian)"),
    ("service_authz_http", "Envoy http_service + authz_service on granian (auth + RBAC)"),
    ("service_authz_rl", "Envoy + authz_service (auth + RBAC + 3 descriptors)"),
    ("service_authz_rlqs", "Envoy + authz_service (auth + RBAC) + RLQS quota, 3 buckets"),
    ("native", "Envoy jwt_authn + RBAC + local_ratelimit"),
    ("one_call", "Envoy + authz_service one-call (Check enforces quota)"),
    ("one_call_http", "Envoy http_service + authz_service one-call on granian (3 descriptors)"),
]


def scenario_envoy(bench: Bench) -> Scenario:
    title = "3. Through Envoy (wrk, HTTP/1.1 keep-alive, 1,000 rotating tokens)"
    if not shutil.which("wrk"):
        return {
            "title": title,
            "rows": [skipped(k, n, "wrk is not installed") for k, n in ENVOY_ROWS],
            "ratios": [],
        }
    names = dict(ENVOY_ROWS)
    targets: list[Target] = []
    pending: list[Row] = []
    with _stopping(bench):
        service, service_port = bench.service("authz-envoy")
        services.expect_allowed(service_port, fixtures.check_bodies(bench.pool))
        redis = services.start_redis(bench.workdir)
        rl_why: str | None = redis if isinstance(redis, str) else None
        rl_service_port = 0
        redis_url = ""
        if not isinstance(redis, str):
            bench.keep(redis[0])
            redis_url = f"redis://127.0.0.1:{redis[1]}/0"
            rl_why = _rate_limit_unavailable(bench, redis_url)
        if rl_why is None:
            rl_service, rl_service_port = bench.service(
                "authz-envoy-rl", extra={"rate_limit": fixtures.rate_limit_section(redis_url)}
            )
            rl_why = _serving_rate_limit(bench, rl_service_port)
        one_call_why = (
            "needs Redis: " + redis
            if isinstance(redis, str)
            else bench.config_problem("one-call", fixtures.one_call_section(redis_url))
        )
        if one_call_why is not None and not one_call_why.startswith("needs"):
            one_call_why = f"the service config has no one-call mode yet ({one_call_why})"

        def envoy_target(key: str, variant: str, processes: dict[str, int], **ports: int) -> None:
            ingress, backend, admin = free_port(), free_port(), free_port()
            values = {
                "ADMIN_PORT": admin,
                "INGRESS_PORT": ingress,
                "BACKEND_PORT": backend,
                **ports,
            }
            envoy = bench.keep(
                services.start_envoy(
                    render_variant(variant, values, bench.pool.idp.jwks()),
                    f"envoy-{key}",
                    bench.workdir,
                    [ingress, backend],
                )
            )
            url = f"http://127.0.0.1:{ingress}{messages.REQUEST_PATH}"
            allowed = services.settled_http_status(url, bench.pool.tokens[0])
            if allowed != 200:
                raise AssertionError(f"{key}: a request with a valid token got {allowed}")
            verified = "200 with a token"
            if key in (
                "service_authz",
                "service_authz_rl",
                "service_authz_rlqs",
                "native",
                "one_call",
                "one_call_http",
            ):
                refused = services.http_status(url, None)
                if refused != 401:
                    raise AssertionError(f"{key}: a request without a token got {refused}")
                verified += ", 401 without"
            targets.append(
                Target(
                    key,
                    names[key],
                    bench.wrk(ingress),
                    {"envoy": envoy.popen.pid, **processes},
                    verified,
                )
            )

        null_pids = {"authz": bench.null_pid}
        envoy_target("plain", "plain", {})
        envoy_target("null_authz", "ext_authz", null_pids, AUTHZ_PORT=bench.null_port)
        envoy_target(
            "null_authz_rl",
            "ext_authz_ratelimit",
            null_pids,
            AUTHZ_PORT=bench.null_port,
            RATELIMIT_PORT=bench.null_port,
        )
        envoy_target(
            "service_authz", "ext_authz", {"authz": service.popen.pid}, AUTHZ_PORT=service_port
        )
        if rl_why is None:
            envoy_target(
                "service_authz_rl",
                "ext_authz_ratelimit",
                {"authz": rl_service.popen.pid},
                AUTHZ_PORT=rl_service_port,
                RATELIMIT_PORT=rl_service_port,
            )
        else:
            pending.append(skipped("service_authz_rl", names["service_authz_rl"], rl_why))
        if rl_why is None:
            rlqs, rlqs_port = bench.service(
                "authz-envoy-rlqs", extra=fixtures.rlqs_section(redis_url)
            )
            envoy_target(
                "service_authz_rlqs",
                "ext_authz_rlqs",
                {"authz": rlqs.popen.pid},
                AUTHZ_PORT=rlqs_port,
            )
        else:
            pending.append(skipped("service_authz_rlqs", names["service_authz_rlqs"], rl_why))
        null_http, null_http_port = services.start_null_http_server(bench.workdir)
        bench.keep(null_http)
        envoy_target(
            "null_authz_http",
            "ext_authz_http",
            {"authz": null_http.popen.pid},
            AUTHZ_PORT=null_http_port,
        )
        http_port = free_port()
        http_service, _ = bench.service(
            "authz-envoy-http", extra=fixtures.http_check_section(http_port)
        )
        envoy_target(
            "service_authz_http",
            "ext_authz_http",
            {"authz": http_service.popen.pid},
            AUTHZ_PORT=http_port,
        )
        envoy_target("native", "native", {})
        if one_call_why is None:
            one_call, one_call_port = bench.service(
                "authz-one-call", extra=fixtures.one_call_section(redis_url)
            )
            envoy_target(
                "one_call", "ext_authz", {"authz": one_call.popen.pid}, AUTHZ_PORT=one_call_port
            )
        else:
            pending.append(skipped("one_call", names["one_call"], one_call_why))
        if one_call_why is None:
            # The full stack on the cheap transport: authentication, RBAC and the same three
            # descriptors charged on Redis inside the HTTP check.
            one_call_http_port = free_port()
            one_call_http, _ = bench.service(
                "authz-one-call-http",
                extra={
                    **fixtures.one_call_section(redis_url),
                    **fixtures.http_check_section(one_call_http_port),
                },
            )
            envoy_target(
                "one_call_http",
                "ext_authz_http",
                {"authz": one_call_http.popen.pid},
                AUTHZ_PORT=one_call_http_port,
            )
        else:
            pending.append(skipped("one_call_http", names["one_call_http"], one_call_why))
        rows = bench.group(targets) + pending
    order = [key for key, _ in ENVOY_ROWS]
    rows.sort(key=lambda row: order.index(row["key"]))
    return {
        "title": title,
        "rows": rows,
        "ratios": [
            ratio("authz_service / null ext_authz", rows, "service_authz", "null_authz", 0.8),
            ratio(
                "authz_service+rl / null ext_authz+rl",
                rows,
                "service_authz_rl",
                "null_authz_rl",
                0.8,
            ),
            ratio("one-call / null ext_authz alone", rows, "one_call", "null_authz", 0.9),
            ratio(
                "RLQS quota / no quota (authz_service)",
                rows,
                "service_authz_rlqs",
                "service_authz",
                0.95,
            ),
            ratio(
                "RLQS quota / classic ratelimit filter",
                rows,
                "service_authz_rlqs",
                "service_authz_rl",
                2.5,
            ),
            ratio(
                "authz_service HTTP / null HTTP server",
                rows,
                "service_authz_http",
                "null_authz_http",
                0.85,
            ),
            ratio(
                "authz_service HTTP / authz_service gRPC",
                rows,
                "service_authz_http",
                "service_authz",
            ),
            ratio("one-call HTTP / null HTTP server", rows, "one_call_http", "null_authz_http"),
            ratio("authz_service / native filters", rows, "service_authz", "native"),
            ratio(
                "one-call HTTP (full stack) / native filters", rows, "one_call_http", "native", 0.35
            ),
            ratio("authz_service HTTP / native filters", rows, "service_authz_http", "native"),
            ratio("authz_service+rl / native filters", rows, "service_authz_rl", "native"),
            ratio("authz_service / plain Envoy", rows, "service_authz", "plain"),
            ratio("native filters / plain Envoy", rows, "native", "plain"),
            ratio("null ext_authz / plain Envoy", rows, "null_authz", "plain"),
            ratio("null ext_authz+rl / plain Envoy", rows, "null_authz_rl", "plain"),
        ],
    }


# -- 4. Scaling --------------------------------------------------------------------------


SCALING_ROWS = [("workers_1", "Check warm, --workers 1"), ("workers_2", "Check warm, --workers 2")]


def scenario_scaling(bench: Bench) -> Scenario:
    title = "4. Scaling: 1 vs 2 worker processes (direct gRPC, warm)"
    missing = _needs_h2grpc(bench, SCALING_ROWS)
    if missing is None and not services.serve_supports_workers():
        missing = [
            skipped(k, n, "`authz-service serve` has no --workers option yet")
            for k, n in SCALING_ROWS
        ]
    if missing is not None:
        return {"title": title, "rows": missing, "ratios": []}
    targets = []
    with _stopping(bench):
        for workers, (key, name) in zip((1, 2), SCALING_ROWS, strict=True):
            process, base = bench.service(f"authz-{key}", workers=workers)
            # `serve --workers N`: worker i listens on the base port + i.
            ports = [base + index for index in range(workers)]
            for port in ports:
                wait_for_port(port, process=process.popen)
                services.expect_allowed(port, fixtures.check_bodies(bench.pool)[:10])
                bench.warm_up(port, bench.check_frames)
            verified = f"allowed on ports {ports}"
            targets.append(
                Target(
                    key,
                    name,
                    bench.grpc_load(ports, messages.CHECK_PATH, bench.check_frames),
                    {"server": process.popen.pid},
                    verified,
                )
            )
        rows = bench.group(targets)
    return {
        "title": title,
        "rows": rows,
        "ratios": [ratio("2 workers / 1 worker", rows, "workers_2", "workers_1")],
    }


# -- 5. Memory ---------------------------------------------------------------------------


def scenario_memory(bench: Bench) -> Scenario:
    s = bench.settings
    title = f"5. Memory: RSS after {s.memory_checks:,} checks and a {s.soak_seconds:g} s soak"
    if bench.h2grpc is None:
        return {
            "title": title,
            "rows": [skipped("memory", "RSS", bench.h2grpc_missing)],
            "ratios": [],
        }
    with _stopping(bench):
        process, port = bench.service("authz-memory")
        services.expect_allowed(port, fixtures.check_bodies(bench.pool))
        bench.warm_up(port, bench.check_frames)
        pids = process_tree(process.popen.pid)

        def rss_mb() -> dict[str, float]:
            return {str(pid): round(rss_bytes(pid) / 2**20, 1) for pid in pids}

        start = rss_mb()
        assert bench.h2grpc is not None
        checks = run_h2grpc(
            bench.h2grpc,
            ports=[port],
            path=messages.CHECK_PATH,
            data=bench.check_frames,
            conns=s.conns,
            streams=s.streams,
            requests=s.memory_checks,
        )
        after_checks = rss_mb()
        samples: list[tuple[float, float]] = []
        stop = threading.Event()

        def sample() -> None:
            t0 = time.monotonic()
            while not stop.wait(1.0):
                samples.append(
                    (
                        round(time.monotonic() - t0, 1),
                        round(sum(rss_bytes(p) for p in pids) / 2**20, 1),
                    )
                )

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        soak = run_h2grpc(
            bench.h2grpc,
            ports=[port],
            path=messages.CHECK_PATH,
            data=bench.check_frames,
            conns=s.conns,
            streams=s.streams,
            duration=s.soak_seconds,
        )
        stop.set()
        sampler.join()
        after_soak = rss_mb()
    total = {
        name: sum(values.values())
        for name, values in (("start", start), ("checks", after_checks), ("soak", after_soak))
    }
    growth = (total["soak"] / total["checks"] - 1) * 100 if total["checks"] else 0.0
    row: Row = {
        "key": "memory",
        "name": "authz_service RSS (MiB, per process)",
        "rss_start_mb": start,
        "rss_after_checks_mb": after_checks,
        "rss_after_soak_mb": after_soak,
        "checks": checks.completed_total,
        "checks_errors": checks.errors,
        "soak_requests": soak.completed_total,
        "soak_rps": round(soak.rps, 1),
        "soak_errors": soak.errors,
        "soak_growth_pct": round(growth, 2),
        "rss_samples_mb": samples,
    }
    return {
        "title": title,
        "rows": [row],
        "ratios": [
            {
                "name": "RSS growth during soak, %",
                "value": round(growth, 2),
                "target_max": 5.0,
                "meets_target": growth <= 5.0,
            }
        ],
    }


SCENARIOS: dict[str, Callable[[Bench], Scenario]] = {
    "1_check": scenario_check,
    "2_rate_limit": scenario_rate_limit,
    "3_envoy": scenario_envoy,
    "4_scaling": scenario_scaling,
    "5_memory": scenario_memory,
}


def run_scenario(name: str, bench: Bench) -> Scenario:
    try:
        return SCENARIOS[name](bench)
    except Exception as error:  # a broken scenario must not hide the others' results
        bench.stop_all()
        return _failed(name, name, error)
