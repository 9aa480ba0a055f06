"""The audit log when its sink stalls or fails: memory stays within `max_queue_bytes`, every
record lost is counted, and `when_full: refuse` turns allows into 503 `audit_unavailable`.

The stalled sink is a real FIFO that nobody reads (the writer blocks once the pipe's buffer is
full, like a log collector that stopped reading); the failing sink is /dev/full (ENOSPC).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from envoy.service.auth.v3 import external_auth_pb2, external_auth_pb2_grpc

from authz_service.decisions import (
    AuthMethod,
    Decision,
    Identity,
    Outcome,
    Reason,
    RequestAttributes,
)
from authz_service.schema import AuditSettings, TelemetrySettings
from authz_service.telemetry.metrics import Metrics
from authz_service.telemetry.reporter import Reporter
from authz_service.telemetry.tracing import INVALID_SPAN
from tests.integration.grpc.conftest import service_config
from tests.support.authz_config import write_config
from tests.support.authz_server import running_server
from tests.support.idp import running_idp

QUEUE_BYTES = 256 * 1024
REQUESTS = 3_000
HEADER_BYTES = 20_000  # with the token: ~28 KB of headers per request, ~85 MB in all


class StalledFifo:
    """A FIFO with a reader that never reads. `unblock()` closes the reader: the blocked
    write fails with EPIPE and the writer moves on (so that stopping does not wait)."""

    def __init__(self, path: Path) -> None:
        os.mkfifo(path)
        self.path = path
        self._reader: int | None = os.open(path, os.O_RDONLY | os.O_NONBLOCK)

    def unblock(self) -> None:
        if self._reader is not None:
            os.close(self._reader)
            self._reader = None


@contextlib.contextmanager
def stalled_fifo(path: Path) -> Iterator[StalledFifo]:
    fifo = StalledFifo(path)
    try:
        yield fifo
    finally:
        fifo.unblock()


def large_request(number: int) -> RequestAttributes:
    """A request as Envoy reports it: big headers and a token, all distinct per request."""
    headers = {
        "authorization": "Bearer " + secrets.token_urlsafe(6_000),
        "x-padding": secrets.token_hex(HEADER_BYTES // 2),
    }
    return RequestAttributes(
        method="GET",
        host="api.example.com",
        path=f"/api/orders/{number}?page=2",
        headers=headers,
        source_address="198.51.100.7",
        request_id=f"req-{number}",
    )


ALLOW = Decision(
    Outcome.ALLOW,
    Reason.ALLOWED,
    "ok",
    policy="public",
    rule="api",
    identity=Identity("alice", AuthMethod.JWT, roles=frozenset({"reader"})),
)


def sample(metrics: Metrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


def test_a_stalled_sink_keeps_queued_audit_records_within_their_byte_bound(
    tmp_path: Path,
) -> None:
    metrics = Metrics()
    with stalled_fifo(tmp_path / "audit.fifo") as fifo:
        settings = AuditSettings(output=str(fifo.path), max_queue_bytes=QUEUE_BYTES)
        telemetry = Reporter(TelemetrySettings(audit=settings), metrics)
        tracemalloc.start()
        try:
            before, _ = tracemalloc.get_traced_memory()
            for number in range(REQUESTS):
                telemetry.check_done(large_request(number), ALLOW, 0.001, INVALID_SPAN, None)
            held, _ = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        queued = sample(metrics, "authz_audit_queue_bytes")
        dropped = sample(metrics, "authz_audit_records_dropped_total", reason="queue_full")
        limit = sample(metrics, "authz_audit_queue_limit_bytes")
    telemetry.close()

    # The headers (85 MB) were never queued; what is queued stays under the bound. The
    # writer holds one chunk of formatted lines besides: allow for it and the allocator.
    assert held - before < 4 * QUEUE_BYTES
    assert 0 < queued <= QUEUE_BYTES == limit
    assert dropped > REQUESTS / 2


def test_a_failing_sink_counts_write_failures_and_the_records_lost() -> None:
    metrics = Metrics()
    settings = AuditSettings(output="/dev/full")  # every write: ENOSPC
    telemetry = Reporter(TelemetrySettings(audit=settings), metrics)
    for number in range(10):
        telemetry.check_done(large_request(number), ALLOW, 0.001, INVALID_SPAN, None)
    telemetry.close()  # writes what is queued, then stops

    assert sample(metrics, "authz_audit_write_failures_total") >= 1
    assert sample(metrics, "authz_audit_records_dropped_total", reason="write_failed") == 10
    assert sample(metrics, "authz_audit_records_dropped_total", reason="queue_full") == 0
    assert sample(metrics, "authz_audit_queue_bytes") == 0


def test_refuse_mode_keeps_failed_writes_and_refuses_once_they_fill_the_queue() -> None:
    metrics = Metrics()
    settings = AuditSettings(output="/dev/full", max_queue_bytes=65_536, when_full="refuse")
    telemetry = Reporter(TelemetrySettings(audit=settings), metrics)
    answered = []
    for number in range(1_000):
        answered.append(
            telemetry.check_done(large_request(number), ALLOW, 0.001, INVALID_SPAN, None)
        )
        if answered[-1].reason is Reason.AUDIT_UNAVAILABLE:
            break
    queued = sample(metrics, "authz_audit_queue_bytes")
    telemetry.close()  # stops retrying: what is still queued is given up, and counted

    assert answered[-1].outcome is Outcome.UNAVAILABLE
    assert answered[-1].reason is Reason.AUDIT_UNAVAILABLE
    assert all(decision.allowed for decision in answered[:-1])
    assert queued > 65_536 / 2  # the failed records stayed queued: nothing silently gone
    lost = sample(metrics, "authz_audit_records_dropped_total", reason="write_failed")
    assert lost == len(answered) - 1  # every queued record, retried until close


def check_request(path: str) -> external_auth_pb2.CheckRequest:
    request = external_auth_pb2.CheckRequest()
    http = request.attributes.request.http
    http.method, http.host, http.path = "GET", "api.example.com", path
    http.headers["x-padding"] = secrets.token_hex(HEADER_BYTES // 2)
    request.attributes.source.address.socket_address.address = "198.51.100.7"
    return request


def reason(response: external_auth_pb2.CheckResponse) -> str:
    for option in response.denied_response.headers:
        if option.header.key == "x-authz-reason":
            return str(option.header.value)
    return ""


@pytest.mark.parametrize("mode", ["refuse", "drop"])
async def test_a_full_audit_queue_refuses_allows_only_in_refuse_mode(
    tmp_path: Path, mode: str
) -> None:
    with running_idp() as idp, stalled_fifo(tmp_path / "audit.fifo") as fifo:
        config = service_config(idp, watch=False)
        config["telemetry"] = {
            "metrics": {"listen": None},
            "audit": {"output": str(fifo.path), "max_queue_bytes": 65_536, "when_full": mode},
        }
        path = write_config(tmp_path / "authz.yaml", config)
        async with (
            running_server(path) as server,
            grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel,
        ):
            check = external_auth_pb2_grpc.AuthorizationStub(channel).Check
            answers = []
            # The pipe's 64 KiB buffer and then the 64 KiB queue fill within a few hundred.
            for _ in range(1_500):
                response = await check(check_request("/public/docs"), timeout=5)
                answers.append(response.denied_response.status.code or 200)
                if answers[-1] != 200:
                    break
            refused_reason = reason(response)
            # A denial stays the denial it is (its line is dropped and counted).
            denied = await check(check_request("/api/orders"), timeout=5)
            refusals = sample(
                server.metrics,
                "authz_check_decisions_total",
                decision="unavailable",
                reason="audit_unavailable",
                policy="public",
            )
            dropped = sample(
                server.metrics, "authz_audit_records_dropped_total", reason="queue_full"
            )
            fifo.unblock()

    assert denied.denied_response.status.code == 401
    assert dropped >= 1
    if mode == "refuse":
        assert answers[-1] == 503
        assert refused_reason == "audit_unavailable"
        assert refusals == 1
    else:
        assert set(answers) == {200}
        assert refusals == 0
