"""SIGTERM under load: NOT_SERVING first, in-flight RPCs finish, exit within the grace period;
and Envoy with two replicas loses no request while one of them is stopped.
"""

from __future__ import annotations

import asyncio
import signal
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import pytest
import yaml
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.e2e.conftest import trusting
from tests.faults.grpc_calls import Client, check_request
from tests.faults.replicas import start_two_replica_envoy
from tests.faults.service import fault_config, start_service, unlimited
from tests.support.idp import running_idp, wait_until
from tests.support.scrape import wait_for_metric
from tools.demo_upstream import start_in_thread
from tools.dev_cert import generate as generate_dev_certs
from tools.dev_idp import DevIdentityProvider, new_rsa_key
from tools.processes import REPO_ROOT, free_port, wait_for_port, write_service_config

GRACE_S = 3.0
HANG_S = 60.0  # the in-flight Checks below are held until the test releases the IdP
EXIT_MARGIN_S = 2.0  # closing stores, telemetry and the interpreter itself
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


@pytest.fixture
def idp() -> Iterator[DevIdentityProvider]:
    with running_idp() as provider:
        yield provider


async def test_sigterm_turns_health_first_finishes_in_flight_rpcs_and_exits_in_grace(
    idp: DevIdentityProvider, tmp_path: Path
) -> None:
    metrics_port = free_port()
    config = fault_config(idp, 0)
    config["server"]["grace_period_s"] = GRACE_S
    config["telemetry"]["metrics"] = {"listen": f"127.0.0.1:{metrics_port}"}
    config["jwt_providers"][0]["jwks"] = {"fetch_timeout_s": HANG_S, "min_refetch_interval_s": 0}
    service, port, _ = start_service(config, tmp_path)
    wait_for_port(metrics_port, process=service.popen)
    # A kid the IdP does not publish, and an IdP that hangs until the test releases it: each
    # Check waits on the JWKS refetch, then answers 401. Those are the in-flight RPCs.
    slow_token = idp.mint("alice", key=new_rsa_key("not-yet-published"))
    slow = check_request("/api/orders", {"authorization": f"Bearer {slow_token}"})
    events: list[tuple[float, str]] = []
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            client = Client(channel, timeout_s=HANG_S)
            watch = health_pb2_grpc.HealthStub(channel).Watch(
                health_pb2.HealthCheckRequest(service="")
            )

            async def follow_health() -> None:
                async for update in watch:
                    events.append((time.monotonic(), f"health {update.status}"))

            watcher = asyncio.create_task(follow_health())
            await wait_until(lambda: events, within_s=10)  # the watch's first update: SERVING
            idp.delay_s = HANG_S

            async def in_flight() -> None:
                outcome = await client.check(slow)
                events.append((time.monotonic(), f"check {outcome}"))

            checks = [asyncio.create_task(in_flight()) for _ in range(8)]
            await wait_for_metric(metrics_port, "authz_rpc_in_flight", {"rpc": "Check"}, 8)
            sigterm_at = time.monotonic()
            service.popen.send_signal(signal.SIGTERM)
            await wait_until(lambda: len(events) >= 2, within_s=10)  # NOT_SERVING seen
            idp.delay_s = 0  # now let the eight in-flight Checks finish, within the grace
            await asyncio.gather(*checks)
            exit_code = await asyncio.to_thread(service.popen.wait, GRACE_S + EXIT_MARGIN_S)
            exited_at = time.monotonic()
            watcher.cancel()
    finally:
        idp.delay_s = 0
        service.stop()

    health = [(at, what) for at, what in events if what.startswith("health")]
    answered = [(at, what) for at, what in events if what.startswith("check")]
    assert [what for _, what in health] == [f"health {SERVING}", f"health {NOT_SERVING}"]
    not_serving_at = health[1][0]
    assert sigterm_at <= not_serving_at < min(at for at, _ in answered), events
    # Every in-flight RPC got its real answer, not a cancellation.
    assert [what for _, what in answered] == ["check http 401 unknown_key"] * 8
    assert exit_code == 0, service.log()
    assert exited_at - sigterm_at < GRACE_S + EXIT_MARGIN_S


def test_envoy_with_two_replicas_loses_no_request_while_one_drains_and_stops(
    idp: DevIdentityProvider, tmp_path: Path, envoy_available: str
) -> None:
    upstream, upstream_v2 = start_in_thread(), start_in_thread(version="v2")
    ports = [free_port(), free_port()]
    replicas = []
    envoy = None
    try:
        for index, port in enumerate(ports):
            path = write_service_config(
                REPO_ROOT / "config" / "local.yaml",
                tmp_path / f"authz{index}.yaml",
                listen_port=port,
                jwks_uri=idp.jwks_uri,
            )
            document = yaml.safe_load(path.read_text())
            unlimited(document)
            document["rate_limit"]["brute_force"] = {"enabled": False}
            document["server"]["grace_period_s"] = GRACE_S
            # Longer than Envoy's health-check interval (0.5 s): it sees NOT_SERVING first.
            document["server"]["drain_delay_s"] = 1.5
            document["telemetry"]["audit"] = {"enabled": False}
            replicas.append(start_service(document, tmp_path, name=f"authz{index}")[0])
        public = free_port()
        tls_dir = generate_dev_certs(tmp_path / "tls")
        envoy = start_two_replica_envoy(
            {
                "PUBLIC_PORT": public,
                "AUTHZ_PORT": ports[0],
                "UPSTREAM_PORT": upstream.server_address[1],
                "UPSTREAM_V2_PORT": upstream_v2.server_address[1],
                "TLS_DIR": tls_dir,
            },
            ports[1],
            tmp_path,
            [public],
            retry=False,
        )
        token = idp.mint("alice", roles=["reader"], lifetime_s=600)
        statuses: Counter[int] = Counter()
        failures: list[tuple[float, int, str]] = []
        stop = threading.Event()

        def load() -> None:
            with httpx.Client(timeout=10, verify=trusting(tls_dir / "ca.crt")) as client:
                while not stop.is_set():
                    response = client.get(
                        f"https://127.0.0.1:{public}/api/orders",
                        headers={"authorization": f"Bearer {token}"},
                    )
                    statuses[response.status_code] += 1
                    if response.status_code != 200:
                        failures.append(
                            (time.monotonic(), response.status_code, response.text[:100])
                        )
                    time.sleep(0.005)

        threads = [threading.Thread(target=load, daemon=True) for _ in range(4)]
        for thread in threads:
            thread.start()
        time.sleep(1.5)
        stopped_at = time.monotonic()
        exit_code = replicas[0].stop(signal.SIGTERM, timeout=GRACE_S + EXIT_MARGIN_S)
        stop_took = time.monotonic() - stopped_at
        time.sleep(2.0)  # the survivor alone
        stop.set()
        for thread in threads:
            thread.join(10)
    finally:
        if envoy is not None:
            envoy.stop()
        for replica in replicas:
            replica.stop()
        for server in (upstream, upstream_v2):
            server.shutdown()
            server.server_close()

    assert exit_code == 0
    assert stop_took < GRACE_S + EXIT_MARGIN_S
    assert statuses[200] > 100, statuses
    assert failures == [], (stopped_at, failures[:5], statuses)
