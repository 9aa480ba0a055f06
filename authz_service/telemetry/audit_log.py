"""The audit log's writer: records wait in a queue bounded in bytes; a thread writes them.

The request path only queues a small record (`audit.CheckRecord`: a few request fields, never
the headers); formatting the JSON and the write happen off the event loop. When the output
stalls (a log collector that stops reading) or fails (a full disk), the queue is what would
grow: it is bounded by `max_queue_bytes`, and every record lost is counted, by reason.

`when_full: refuse` fails closed instead: the reporter refuses a request whose record does not
fit, and failed writes are retried rather than dropped, so a broken output fills the queue and
refuses too. Retried lines may then appear twice: at least once, never silently lost.

`synchronous=True` (the Lambda authorizer: a frozen instance runs no thread) writes each
record before `record` returns, to the output as it is then (`sys.stdout` looked up each
time); a failed write is a record that did not fit.
"""

from __future__ import annotations

import logging
import queue
import sys
import threading
import time
from collections.abc import Iterator
from typing import IO, Protocol

from authz_service.decisions import Decision, RequestAttributes
from authz_service.ratelimit.results import Descriptor, RateLimitResult
from authz_service.schema import AuditSettings
from authz_service.telemetry.audit import CheckRecord, RateLimitRecord

log = logging.getLogger(__name__)


class Record(Protocol):
    """A queued line: its size while queued, and its text (formatted by the writer)."""

    @property
    def nbytes(self) -> int: ...

    def line(self) -> str: ...


# Records formatted and written at once: bounds the text the writer holds besides the queue.
_CHUNK_BYTES = 256 * 1024


class AuditLog:
    def __init__(
        self, settings: AuditSettings, flush_interval_s: float = 0.2, *, synchronous: bool = False
    ) -> None:
        self.enabled = settings.enabled
        self._synchronous = synchronous
        self._output = settings.output
        self.refuses_when_full = settings.when_full == "refuse"
        self.max_queue_bytes = settings.max_queue_bytes
        self.flush_interval_s = flush_interval_s
        # Written by one thread each (the event loop's, the writer's); read at scrape time.
        self.dropped_full = 0
        self.dropped_write_failed = 0
        self.write_failures = 0
        self._queued_bytes = 0  # accepted and not yet written (or given up)
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._failing = False
        self._queue: queue.SimpleQueue[tuple[Record, int] | None] = queue.SimpleQueue()
        self._stream: IO[str] | None = None
        self._owned = False
        self._thread: threading.Thread | None = None
        if not settings.enabled:
            return
        if synchronous:
            return
        if settings.output == "stdout":
            self._stream = sys.stdout
        elif settings.output == "stderr":
            self._stream = sys.stderr
        else:
            self._stream = open(settings.output, "a", encoding="utf-8")  # noqa: SIM115
            self._owned = True
        self._thread = threading.Thread(target=self._drain, name="audit-log", daemon=True)
        self._thread.start()

    @property
    def queued_bytes(self) -> int:
        return self._queued_bytes

    def record(
        self,
        request: RequestAttributes,
        decision: Decision,
        duration_s: float,
        trace_id: str,
        span_id: str,
        principal: str | None,
    ) -> bool:
        """Queue a Check decision's record; False when it did not fit (counted)."""
        at = time.time()
        return self.offer(
            CheckRecord.of(request, decision, duration_s, trace_id, span_id, principal, at)
        )

    def record_rate_limit(
        self,
        domain: str,
        descriptors: tuple[Descriptor, ...],
        result: RateLimitResult | None,
        duration_s: float,
        trace_id: str,
        span_id: str,
    ) -> bool:
        record = RateLimitRecord(
            domain, descriptors, result, duration_s, trace_id, span_id, time.time()
        )
        return self.offer(record)

    def offer(self, record: Record) -> bool:
        """Queue `record` if the queue has room for it; otherwise count it as dropped."""
        if self._synchronous:
            return self._write_now(record)
        if self._thread is None:
            return False
        size = record.nbytes
        with self._lock:
            if self._queued_bytes + size > self.max_queue_bytes:
                self.dropped_full += 1
                return False
            self._queued_bytes += size
        self._queue.put((record, size))
        return True

    def _write_now(self, record: Record) -> bool:
        if not self.enabled:
            return False
        output = self._output
        if output in ("stdout", "stderr"):
            self._stream = sys.stdout if output == "stdout" else sys.stderr
        elif self._stream is None:
            self._stream = open(output, "a", encoding="utf-8")  # noqa: SIM115
            self._owned = True
        if self._write(record.line() + "\n"):
            return True
        self.dropped_write_failed += 1
        return False

    def _drain(self) -> None:
        while True:
            # Wake up a few times a second and take everything: one wake-up (and one GIL
            # hand-over) per item would cost the event loop more than the formatting.
            batch = [self._queue.get()]
            time.sleep(self.flush_interval_s)
            while True:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            entries = [entry for entry in batch if entry is not None]
            for chunk in _chunks(entries):
                self._write_chunk(chunk)
            if len(entries) < len(batch):  # close() asked to stop
                return

    def _write_chunk(self, chunk: list[tuple[Record, int]]) -> None:
        text = "".join(record.line() + "\n" for record, _ in chunk)
        while not self._write(text):
            if not self.refuses_when_full or self._closing.is_set():
                self.dropped_write_failed += len(chunk)
                break
            # Fail closed: keep the records queued (a full queue refuses requests); retry.
            self._closing.wait(self.flush_interval_s)
        released = sum(size for _, size in chunk)
        with self._lock:
            self._queued_bytes -= released

    def _write(self, text: str) -> bool:
        if self._stream is None:
            return False
        try:
            self._stream.write(text)
            self._stream.flush()
        except (OSError, ValueError) as error:
            self.write_failures += 1
            if not self._failing:  # once per failing streak, not once per batch
                log.error("audit log output failing (%s); see authz_audit_* metrics", error)
            self._failing = True
            return False
        if self._failing:
            log.warning("audit log output writable again")
        self._failing = False
        return True

    def close(self) -> None:
        """Write what is queued (one attempt each), then stop."""
        thread = self._thread
        if thread is not None:
            self._closing.set()
            self._queue.put(None)
            thread.join(timeout=5)
            self._thread = None
        # A writer still blocked on a stalled output holds the stream's lock: leave it open.
        stalled = thread is not None and thread.is_alive()
        if self._owned and self._stream is not None and not stalled:
            self._stream.close()
        self._stream = None


def _chunks(entries: list[tuple[Record, int]]) -> Iterator[list[tuple[Record, int]]]:
    chunk: list[tuple[Record, int]] = []
    held = 0
    for entry in entries:
        chunk.append(entry)
        held += entry[1]
        if held >= _CHUNK_BYTES:
            yield chunk
            chunk, held = [], 0
    if chunk:
        yield chunk
