"""envoy.service.rate_limit_quota.v3.RateLimitQuotaService on grpc.aio: one bidirectional
stream per Envoy filter; usage reports in, assignments out (answers and pushes)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

import grpc
from envoy.service.rate_limit_quota.v3 import rlqs_pb2, rlqs_pb2_grpc

from authz_service.grpc.quota_messages import BadReport, response_to_proto, usages_from_proto
from authz_service.ratelimit.quota_assignments import Assignment
from authz_service.services.quota_service import (
    EnvoyStream,
    QuotaServiceUnavailable,
    QuotaShareService,
)

log = logging.getLogger(__name__)

SERVICE_NAME = rlqs_pb2.DESCRIPTOR.services_by_name["RateLimitQuotaService"].full_name


class _StreamEnded(Exception):
    """The reader stopped: Envoy closed its side, or a report could not be answered."""

    def __init__(self, error: tuple[grpc.StatusCode, str] | None = None) -> None:
        super().__init__(error[1] if error else "stream ended")
        self.error = error


class RateLimitQuotaServicer(rlqs_pb2_grpc.RateLimitQuotaServiceServicer):  # type: ignore[misc]
    def __init__(self, service: QuotaShareService) -> None:
        self._service = service

    async def StreamRateLimitQuotas(
        self, request_iterator: AsyncIterator[Any], context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[Any]:
        stream = self._service.open_stream(context.peer() or "")
        reader = asyncio.create_task(self._read(request_iterator, stream))
        try:
            while (batch := await _next(stream, reader)) is not None:
                yield response_to_proto(batch)
            finished = reader.done() and not reader.cancelled()
            ended = reader.exception() if finished else None
            if isinstance(ended, _StreamEnded):
                if ended.error is not None:
                    await context.abort(*ended.error)
            elif ended is not None:
                log.error("RLQS stream from %s failed", stream.peer, exc_info=ended)
                await context.abort(grpc.StatusCode.INTERNAL, "usage report failed")
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reader
            await self._service.close_stream(stream)

    async def _read(self, reports: AsyncIterator[Any], stream: EnvoyStream) -> None:
        """Answer each report on the stream's outbox; raises _StreamEnded when done."""
        async for report in reports:
            try:
                domain, usages, skipped = usages_from_proto(report)
            except BadReport as error:
                raise _StreamEnded((grpc.StatusCode.INVALID_ARGUMENT, str(error))) from None
            if skipped:
                log.warning("RLQS report from %s: %d unusable bucket ids", stream.peer, skipped)
            if not usages:
                continue
            try:
                assignments = await self._service.report(stream, domain, usages)
            except QuotaServiceUnavailable as error:
                raise _StreamEnded((grpc.StatusCode.FAILED_PRECONDITION, str(error))) from None
            stream.outbox.put_nowait(assignments)
        raise _StreamEnded()


async def _next(stream: EnvoyStream, reader: asyncio.Task[None]) -> list[Assignment] | None:
    """The next batch to send (an answer or a push), or None to end the stream: the reader
    stopped and everything it queued was sent, or the service is shutting down."""
    if not stream.outbox.empty():
        return stream.outbox.get_nowait()
    if reader.done():
        return None
    getting = asyncio.ensure_future(stream.outbox.get())
    try:
        await asyncio.wait({getting, reader}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        if not getting.done():
            getting.cancel()
    if getting.done() and not getting.cancelled():
        return getting.result()
    return stream.outbox.get_nowait() if not stream.outbox.empty() else None


def add_quota_servicer(server: grpc.aio.Server, service: QuotaShareService) -> None:
    rlqs_pb2_grpc.add_RateLimitQuotaServiceServicer_to_server(
        RateLimitQuotaServicer(service), server
    )
