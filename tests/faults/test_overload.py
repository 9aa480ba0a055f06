"""Overload: beyond `server.max_concurrent_rpcs` the service sheds at once, it does not queue.

Four Checks are kept busy on a slow path (a token whose kid the IdP does not publish, while
the IdP hangs: each waits on the JWKS refetch) until the test releases the IdP. The test waits
until the service's own in-flight gauge shows the four, floods it, and checks that every
further call was refused (RESOURCE_EXHAUSTED; Envoy's ext_authz then answers its
status_on_error, 503) while the four still held their slots: refused without queueing, shown
by order of events rather than by a wall-clock bound. Capacity comes back once they end.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path
from typing import Any

import grpc
import httpx

from tests.faults.grpc_calls import Client, check_request
from tests.faults.service import fault_config, start_service
from tests.support.idp import running_idp
from tests.support.scrape import metric_value, wait_for_metric
from tools.dev_idp import DevIdentityProvider, new_rsa_key
from tools.processes import free_port, wait_for_port

MAX_CONCURRENT = 4
# Longer than any test here runs: the slow calls end when the test releases the IdP, never
# on their own while the flood is being answered.
HANG_S = 120.0


def overload_config(idp: DevIdentityProvider, metrics_port: int) -> dict[str, Any]:
    config = fault_config(idp, 0)
    config["telemetry"]["metrics"] = {"listen": f"127.0.0.1:{metrics_port}"}
    config["jwt_providers"][0]["jwks"] = {"fetch_timeout_s": HANG_S, "min_refetch_interval_s": 0}
    return config


async def outcome_of(call: Any) -> str:
    try:
        return str(await call)
    except grpc.aio.AioRpcError as error:
        return f"grpc {error.code().name}"


async def test_calls_beyond_the_concurrency_limit_are_shed_without_queueing(
    tmp_path: Path,
) -> None:
    metrics_port = free_port()
    in_flight = ("authz_rpc_in_flight", {"rpc": "Check"})
    with running_idp() as idp:
        config = overload_config(idp, metrics_port)
        config["server"]["max_concurrent_rpcs"] = MAX_CONCURRENT
        service, port, _ = start_service(config, tmp_path)
        wait_for_port(metrics_port, process=service.popen)
        good = check_request(
            "/api/orders", {"authorization": f"Bearer {idp.mint('alice', lifetime_s=600)}"}
        )
        slow_token = idp.mint("alice", key=new_rsa_key("unpublished"))
        slow = check_request("/api/orders", {"authorization": f"Bearer {slow_token}"})
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                client = Client(channel, timeout_s=HANG_S)
                assert await client.check(good) == "ok"
                idp.delay_s = HANG_S
                busy = [asyncio.create_task(client.check(slow)) for _ in range(MAX_CONCURRENT)]
                await wait_for_metric(metrics_port, *in_flight, MAX_CONCURRENT)
                flood = await asyncio.gather(
                    *(outcome_of(client.check(good if i % 2 else slow)) for i in range(200))
                )
                held_through_the_flood = not any(task.done() for task in busy)
                still_in_flight = await metric_value(metrics_port, *in_flight)
                idp.delay_s = 0  # release the hung refetch: the four get their answer
                slow_answers = await asyncio.gather(*busy)
                recovered = await client.check(good)
        finally:
            idp.delay_s = 0
            running = service.popen.poll() is None
            service.stop()

    assert Counter(flood) == {"grpc RESOURCE_EXHAUSTED": 200}
    assert held_through_the_flood
    assert still_in_flight == MAX_CONCURRENT
    # The calls holding the slots got their real answer once the fetch returned.
    assert slow_answers == ["http 401 unknown_key"] * MAX_CONCURRENT
    assert recovered == "ok"
    assert running, service.log()


async def test_a_limit_of_one_still_serves_sequential_calls(tmp_path: Path) -> None:
    with running_idp() as idp:
        config = fault_config(idp, 0)
        config["server"]["max_concurrent_rpcs"] = 1
        service, port, _ = start_service(config, tmp_path)
        good = check_request(
            "/api/orders", {"authorization": f"Bearer {idp.mint('alice', lifetime_s=600)}"}
        )
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                client = Client(channel)
                answers = [await client.check(good) for _ in range(50)]
        finally:
            service.stop()
    assert answers == ["ok"] * 50


async def test_http_checks_beyond_the_limit_are_answered_503_without_queueing(
    tmp_path: Path,
) -> None:
    http_port = free_port()
    metrics_port = free_port()
    in_flight = ("authz_rpc_in_flight", {"rpc": "HttpCheck"})
    with running_idp() as idp:
        config = overload_config(idp, metrics_port)
        config["http_check"] = {
            "listen": f"127.0.0.1:{http_port}",
            "max_concurrent_requests": MAX_CONCURRENT,
        }
        service, _, _ = start_service(config, tmp_path)
        wait_for_port(http_port, process=service.popen)
        wait_for_port(metrics_port, process=service.popen)
        url = f"http://127.0.0.1:{http_port}/envoy/api/orders"
        good = {"authorization": f"Bearer {idp.mint('alice', lifetime_s=600)}"}
        slow = {"authorization": f"Bearer {idp.mint('alice', key=new_rsa_key('unpublished'))}"}
        try:
            async with httpx.AsyncClient(timeout=HANG_S) as client:
                assert (await client.get(url, headers=good)).status_code == 200
                idp.delay_s = HANG_S
                busy = [
                    asyncio.create_task(client.get(url, headers=slow))
                    for _ in range(MAX_CONCURRENT)
                ]
                await wait_for_metric(metrics_port, *in_flight, MAX_CONCURRENT)
                flood = await asyncio.gather(*(client.get(url, headers=good) for _ in range(40)))
                held_through_the_flood = not any(task.done() for task in busy)
                idp.delay_s = 0
                slow_answers = await asyncio.gather(*busy)
                recovered = await client.get(url, headers=good)
        finally:
            idp.delay_s = 0
            service.stop()

    assert {(r.status_code, r.headers["x-authz-reason"]) for r in flood} == {(503, "overloaded")}
    assert flood[0].headers["retry-after"] == "1"
    assert held_through_the_flood
    assert [r.status_code for r in slow_answers] == [401] * MAX_CONCURRENT
    assert recovered.status_code == 200
