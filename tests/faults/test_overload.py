"""Overload: beyond `server.max_concurrent_rpcs` the service sheds at once, it does not queue.

Four Checks are kept busy on a slow path (a token whose kid the IdP does not publish, while
the IdP hangs: each waits on the JWKS refetch for the fetch timeout). A flood of further calls
meanwhile must each be refused with RESOURCE_EXHAUSTED within milliseconds (Envoy's ext_authz
then answers its status_on_error, 503), and capacity must come back once the slow ones end.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from pathlib import Path

import grpc
import httpx

from tests.faults.grpc_calls import Client, check_request
from tests.faults.service import fault_config, start_service
from tests.support.idp import running_idp
from tools.dev_idp import new_rsa_key
from tools.processes import free_port, wait_for_port

MAX_CONCURRENT = 4
FETCH_TIMEOUT_S = 1.5
# A refusal is one trip through grpc core; generous for a loaded 2-core machine.
SHED_BOUND_S = 0.25


async def timed(call: object) -> tuple[str, float]:
    started = time.monotonic()
    try:
        outcome = await call  # type: ignore[misc]
    except grpc.aio.AioRpcError as error:
        outcome = f"grpc {error.code().name}"
    return outcome, time.monotonic() - started


async def test_calls_beyond_the_concurrency_limit_are_shed_at_once(tmp_path: Path) -> None:
    with running_idp() as idp:
        config = fault_config(idp, 0)
        config["server"]["max_concurrent_rpcs"] = MAX_CONCURRENT
        config["jwt_providers"][0]["jwks"] = {
            "fetch_timeout_s": FETCH_TIMEOUT_S,
            "min_refetch_interval_s": 0,
        }
        service, port, _ = start_service(config, tmp_path)
        good = check_request(
            "/api/orders", {"authorization": f"Bearer {idp.mint('alice', lifetime_s=600)}"}
        )
        slow_token = idp.mint("alice", key=new_rsa_key("unpublished"))
        slow = check_request("/api/orders", {"authorization": f"Bearer {slow_token}"})
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                client = Client(channel, timeout_s=FETCH_TIMEOUT_S + 3)
                assert await client.check(good) == "ok"
                idp.delay_s = 2 * FETCH_TIMEOUT_S
                busy = [
                    asyncio.create_task(timed(client.check(slow))) for _ in range(MAX_CONCURRENT)
                ]
                await asyncio.sleep(0.3)  # the four are now waiting on the hung IdP
                flood_started = time.monotonic()
                flood = await asyncio.gather(
                    *(timed(client.check(good if i % 2 else slow)) for i in range(200))
                )
                flood_took = time.monotonic() - flood_started
                slow_answers = await asyncio.gather(*busy)
                idp.delay_s = 0
                recovered = await client.check(good)
        finally:
            idp.delay_s = 0
            running = service.popen.poll() is None
            service.stop()

    outcomes = Counter(outcome for outcome, _ in flood)
    assert outcomes == {"grpc RESOURCE_EXHAUSTED": 200}, outcomes
    slowest_refusal = max(latency for _, latency in flood)
    assert slowest_refusal < SHED_BOUND_S, slowest_refusal
    assert flood_took < 1.0  # no queueing behind the busy calls (they take 1.5 s)
    # The calls holding the slots got their real answer once the fetch gave up.
    assert [outcome for outcome, _ in slow_answers] == ["http 401 unknown_key"] * MAX_CONCURRENT
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


async def test_http_checks_beyond_the_limit_are_answered_503_at_once(tmp_path: Path) -> None:
    http_port = free_port()
    with running_idp() as idp:
        config = fault_config(idp, 0)
        config["http_check"] = {
            "listen": f"127.0.0.1:{http_port}",
            "max_concurrent_requests": MAX_CONCURRENT,
        }
        config["jwt_providers"][0]["jwks"] = {
            "fetch_timeout_s": FETCH_TIMEOUT_S,
            "min_refetch_interval_s": 0,
        }
        service, _, _ = start_service(config, tmp_path)
        wait_for_port(http_port, process=service.popen)
        url = f"http://127.0.0.1:{http_port}/envoy/api/orders"
        good = {"authorization": f"Bearer {idp.mint('alice', lifetime_s=600)}"}
        slow = {"authorization": f"Bearer {idp.mint('alice', key=new_rsa_key('unpublished'))}"}
        try:
            async with httpx.AsyncClient(timeout=FETCH_TIMEOUT_S + 3) as client:
                assert (await client.get(url, headers=good)).status_code == 200
                idp.delay_s = 2 * FETCH_TIMEOUT_S
                busy = [
                    asyncio.create_task(client.get(url, headers=slow))
                    for _ in range(MAX_CONCURRENT)
                ]
                await asyncio.sleep(0.3)  # the four are now waiting on the hung IdP
                flood_started = time.monotonic()
                flood = await asyncio.gather(*(client.get(url, headers=good) for _ in range(40)))
                flood_took = time.monotonic() - flood_started
                slow_answers = await asyncio.gather(*busy)
                idp.delay_s = 0
                recovered = await client.get(url, headers=good)
        finally:
            idp.delay_s = 0
            service.stop()

    assert {(r.status_code, r.headers["x-authz-reason"]) for r in flood} == {(503, "overloaded")}
    assert flood[0].headers["retry-after"] == "1"
    assert flood_took < 1.0  # no queueing behind the busy checks (they take 1.5 s)
    assert [r.status_code for r in slow_answers] == [401] * MAX_CONCURRENT
    assert recovered.status_code == 200
