"""Open-loop load for fault tests: RPCs fired at a fixed rate, each one timed and recorded.

A closed loop (send, wait, send) slows down when the service does and hides queueing; here a
ticker starts each call on schedule whatever happened to the previous ones, as Envoy would.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import grpc


@dataclass(frozen=True, slots=True)
class Call:
    kind: str
    started: float  # monotonic
    latency: float
    outcome: str  # e.g. "ok", "http 503", "grpc UNAVAILABLE"
    detail: str = ""  # the gRPC status message of a failed call


@dataclass
class CallLog:
    calls: list[Call] = field(default_factory=list)

    def between(self, start: float, end: float, kind: str | None = None) -> list[Call]:
        """Calls started at or after `start` that finished by `end`."""
        return [
            c
            for c in self.calls
            if c.started >= start
            and c.started + c.latency <= end
            and (kind is None or c.kind == kind)
        ]

    def outcomes(self, calls: list[Call] | None = None) -> dict[str, int]:
        counts: dict[str, int] = {}
        for call in self.calls if calls is None else calls:
            name = f"{call.kind}: {call.outcome}"
            counts[name] = counts.get(name, 0) + 1
        return counts

    def slowest(self) -> Call:
        return max(self.calls, key=lambda c: c.latency)


Probe = Callable[[], Awaitable[str]]


async def timed(log: CallLog, kind: str, probe: Probe) -> None:
    started = time.monotonic()
    detail = ""
    try:
        outcome = await probe()
    except grpc.aio.AioRpcError as error:
        outcome, detail = f"grpc {error.code().name}", error.details() or ""
    log.calls.append(Call(kind, started, time.monotonic() - started, outcome, detail))


async def run_open_loop(
    log: CallLog, probes: dict[str, Probe], rate_per_s: float, stop: asyncio.Event
) -> None:
    """Start every probe `rate_per_s` times a second (each) until `stop` is set; then wait."""
    interval = 1.0 / rate_per_s
    pending: set[asyncio.Task[None]] = set()
    next_at = time.monotonic()
    while not stop.is_set():
        for kind, probe in probes.items():
            task = asyncio.create_task(timed(log, kind, probe))
            pending.add(task)
            task.add_done_callback(pending.discard)
        next_at += interval
        await asyncio.sleep(max(0.0, next_at - time.monotonic()))
    if pending:
        await asyncio.wait(pending)
